using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Gateway;

/// <summary>The worker's model gateway: one per worker process, serving every run that uses it.</summary>
public interface IModelGateway
{
    /// <summary>Registers a run (starting the gateway with the first); the gateway serves its connections until the returned run is disposed.</summary>
    ValueTask<GatewayRun> OpenAsync(GatewayRunRequest request, CancellationToken cancellationToken);
}

/// <param name="JobId">The job, for the gateway's log lines.</param>
/// <param name="AgentId">The agent, for the metrics.</param>
/// <param name="Vendors">The vendors the run may call.</param>
/// <param name="Budget">What the run may spend.</param>
/// <param name="Events">Where each request's <c>model</c> event goes (the job's log).</param>
public sealed record GatewayRunRequest(string JobId, string AgentId, IReadOnlyList<ModelVendor> Vendors, ModelBudget Budget, Func<NewJobEvent, ValueTask> Events);

/// <summary>
/// One run's door to the gateway. Every connection the agent opens to the gateway's port (accepted on the run's own
/// listener) is handed to the gateway as this run's, so the gateway knows which run asks without the agent saying; the
/// agent must also present <see cref="Placeholder"/> as its key. Both stop working when the run is disposed, and the
/// run's connections are closed.
/// </summary>
public sealed class GatewayRun : IDisposable
{
    /// <summary>The gateway's port inside the sandbox.</summary>
    public const int InsidePort = 3127;

    private const string PlaceholderPrefix = "awgw-";

    private readonly Func<Socket, GatewayRun, Task> _serve;
    private readonly CancellationTokenSource _stop = new();
    private TcpListener? _hostListener;
    private int _disposed;

    /// <param name="request">What the run may call and spend.</param>
    /// <param name="meter">Where its usage is counted.</param>
    /// <param name="serve">Serves one of the agent's connections until it closes.</param>
    internal GatewayRun(GatewayRunRequest request, UsageMeter meter, Func<Socket, GatewayRun, Task> serve)
    {
        Request = request;
        Meter = meter;
        _serve = serve;
        Placeholder = PlaceholderPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
    }

    public GatewayRunRequest Request { get; }
    public UsageMeter Meter { get; }

    /// <summary>Fires when the run ends: its connections close then.</summary>
    public CancellationToken Ended => _stop.Token;

    /// <summary>What the agent gets in place of each vendor's key.</summary>
    public string Placeholder { get; }

    public bool IsOpen => Volatile.Read(ref _disposed) == 0;

    /// <summary>Whether <paramref name="presented"/> is this run's placeholder, compared in constant time.</summary>
    public bool Accepts(string? presented) =>
        IsOpen && presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(Placeholder));

    /// <summary>The variables the agent reads its vendors from: base URLs on the gateway at <paramref name="baseUrl"/>, and the placeholder as each key.</summary>
    public IReadOnlyDictionary<string, string> Variables(Uri baseUrl)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var vendor in Request.Vendors)
        {
            variables[vendor.BaseUrlVariable] = new Uri(baseUrl, vendor.Name).AbsoluteUri;
            if (vendor.KeyVariable is { } key)
                variables[key] = Placeholder;
        }
        return variables;
    }

    /// <summary>Serves one connection the agent opened to the gateway's port, until it closes.</summary>
    public Task ServeAsync(Socket client)
    {
        if (IsOpen)
            return _serve(client, this);
        client.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>
    /// Without a sandbox the agent shares the host's network: the gateway is reached on a port of the host's loopback
    /// instead, which only this run's placeholder opens. Returns the base URL.
    /// </summary>
    public Uri ListenOnHost()
    {
        _hostListener = new TcpListener(IPAddress.Loopback, 0);
        _hostListener.Start();
        _ = AcceptAsync(_hostListener);
        return new Uri($"http://127.0.0.1:{((IPEndPoint)_hostListener.LocalEndpoint).Port}/");
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Cancel();
        _hostListener?.Dispose();
    }
}
