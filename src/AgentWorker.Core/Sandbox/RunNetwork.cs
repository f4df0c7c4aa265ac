using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Jobs;
using Microsoft.Win32.SafeHandles;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// What a run's network namespace holds besides an idle <c>lo</c>: loopback ports the worker serves. For networks
/// <c>allowlist</c> and <c>full</c> the HTTP and SOCKS5 proxy ports (both the <see cref="EgressProxy"/>); in any network, for
/// an agent with vendors behind the model gateway, the gateway's port (<see cref="Gateway.GatewayRun"/>); for an MCP URL
/// (<c>mcp_only</c>, or any network when the job has one) the MCP port, forwarded to the MCP host and port and nothing else.
/// A root worker builds the namespace with those ports already listening (<see cref="NetworkNamespace"/>); otherwise bubblewrap
/// builds it and <c>agent-worker sandbox forward</c> inside relays each port to a unix socket bound into the sandbox.
/// </summary>
internal sealed class RunNetwork : IDisposable
{
    public const int HttpProxyPort = 3128;
    public const int SocksProxyPort = 1080;

    // One agent must not exhaust the worker's file descriptors through its MCP port.
    private const int MaxMcpConnections = 64;
    private const string InsideDirectory = "/run/agent-worker";

    private readonly List<(int Port, Func<Socket, Task> Serve)> _routes = [];
    private readonly NetworkNamespace? _namespace;
    private readonly string? _socketDirectory;
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _connections = [];
    private readonly List<Task> _accepting = [];
    private readonly SemaphoreSlim _open;
    private readonly CancellationTokenSource _stop = new();
    private readonly EgressProxy? _proxy;
    private readonly Uri? _mcp;

    private RunNetwork(SandboxRequest request, bool ownNamespace)
    {
        _proxy = request.Network is NetworkMode.Allowlist or NetworkMode.Full ? request.Egress : null;
        // Each connection costs the worker a descriptor: past this many at once, the agent's connects wait in the backlog.
        _open = new SemaphoreSlim(_proxy?.MaxOpen ?? MaxMcpConnections);
        if (_proxy is { } proxy)
        {
            _routes.Add((HttpProxyPort, proxy.ServeAsync));
            _routes.Add((SocksProxyPort, proxy.ServeAsync));
        }
        if (request.Gateway is { } gateway)
            _routes.Add((Gateway.GatewayRun.InsidePort, gateway.ServeAsync));
        if (request.Network != NetworkMode.None && request.McpUrl is { } mcpUrl)
        {
            if (!Uri.TryCreate(mcpUrl, UriKind.Absolute, out var mcp) || mcp.Port <= 0)
                throw new SandboxException($"MCP URL '{mcpUrl}' has no host and port to forward to");
            _mcp = mcp;
            // Ports below 1024 cannot be bound without privileges inside the sandbox; 80 becomes 8080, 443 8443.
            McpInsidePort = mcp.Port >= 1024 ? mcp.Port : 8000 + mcp.Port;
            if (_routes.Any(r => r.Port == McpInsidePort))
                throw new SandboxException($"the MCP URL's port {mcp.Port} is taken by the egress proxy or the model gateway inside the sandbox: serve MCP on another port");
            InsideMcpUrl = new UriBuilder(mcp) { Port = McpInsidePort }.Uri.AbsoluteUri;
            _routes.Add((McpInsidePort, ForwardToMcpAsync));
        }
        try
        {
            if (ownNamespace)
            {
                _namespace = NetworkNamespace.Create([.. _routes.Select(r => r.Port)]);
                _listeners.AddRange(_namespace.Listeners);
            }
            else
            {
                // Unix socket paths are limited to 108 bytes; work dir + job id can be longer.
                _socketDirectory = Directory.CreateTempSubdirectory("aw-net-").FullName;
                File.SetUnixFileMode(_socketDirectory, (UnixFileMode)0x1ED);
                foreach (var (port, _) in _routes)
                {
                    var path = HostSocket(port);
                    var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    _listeners.Add(listener);
                    listener.Bind(new UnixDomainSocketEndPoint(path));
                    listener.Listen(128);
                    // The agent runs as another (mapped) user; the socket file must be connectable by it.
                    File.SetUnixFileMode(path, (UnixFileMode)0x1FF);
                }
            }
        }
        catch (Exception e) when (e is not SandboxException)
        {
            Dispose();
            throw new SandboxException($"cannot set up the agent's network: {e.Message}");
        }
        for (var i = 0; i < _routes.Count; i++)
            _accepting.Add(AcceptAsync(_listeners[i], _routes[i].Serve));
    }

    /// <summary>Null when the run's network is only an idle <c>lo</c> (network none, or mcp_only without a URL).</summary>
    public static RunNetwork? Start(SandboxRequest request, bool ownNamespace)
    {
        var network = new RunNetwork(request, ownNamespace);
        if (network._routes.Count > 0)
            return network;
        network.Dispose();
        return null;
    }

    /// <summary>The namespace the launcher must start in; null when bubblewrap makes one.</summary>
    public SafeFileHandle? Namespace => _namespace?.Handle;

    public string? InsideMcpUrl { get; }
    public int McpInsidePort { get; }

    /// <summary>The MCP host, which resolves to 127.0.0.1 inside so that TLS names still match.</summary>
    public string? McpHost => _mcp?.Host;

    /// <summary>The proxy settings every HTTP client and most tools read (the MCP host is reached directly, not through them).</summary>
    public IReadOnlyDictionary<string, string> Variables()
    {
        if (_proxy is null)
            return new Dictionary<string, string>();
        var http = $"http://127.0.0.1:{HttpProxyPort}";
        var socks = $"socks5h://127.0.0.1:{SocksProxyPort}";
        var direct = string.Join(',', new[] { "localhost", "127.0.0.1", McpHost }.OfType<string>().Distinct());
        return new Dictionary<string, string>
        {
            ["HTTPS_PROXY"] = http, ["https_proxy"] = http, ["HTTP_PROXY"] = http, ["http_proxy"] = http,
            ["ALL_PROXY"] = socks, ["all_proxy"] = socks, ["NO_PROXY"] = direct, ["no_proxy"] = direct,
        };
    }

    /// <summary>Bubblewrap arguments: the relay's sockets, when bubblewrap makes the namespace.</summary>
    public IEnumerable<string> BubblewrapArguments() => _socketDirectory is null
        ? []
        : _routes.SelectMany(r => new[] { "--bind", HostSocket(r.Port), InsideSocket(r.Port) });

    /// <summary>What runs before the agent inside the sandbox: the relay, when bubblewrap makes the namespace.</summary>
    public IEnumerable<string> InsidePrefix(IReadOnlyList<string> selfCommand) => _socketDirectory is null
        ? []
        : [.. selfCommand, "sandbox", "forward", .. _routes.SelectMany(r => new[] { "--forward", $"{r.Port.ToString(CultureInfo.InvariantCulture)}={InsideSocket(r.Port)}" }), "--"];

    /// <summary>The inside half of the relay: accepts on each loopback port and relays each connection to its unix socket.</summary>
    public static async Task RelayInsideAsync(IReadOnlyList<(int Port, string Socket)> forwards, TaskCompletionSource listening, CancellationToken cancellationToken)
    {
        List<TcpListener> listeners = [];
        try
        {
            foreach (var (port, _) in forwards)
            {
                var listener = new TcpListener(IPAddress.Loopback, port);
                listeners.Add(listener);
                listener.Start();
            }
            listening.TrySetResult();
            await Task.WhenAll(forwards.Select((f, i) => RelayAsync(listeners[i], f.Socket, cancellationToken))).ConfigureAwait(false);
        }
        finally
        {
            listeners.ForEach(l => l.Dispose());
        }
    }

    private static async Task RelayAsync(TcpListener listener, string socketPath, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var client = await listener.AcceptSocketAsync(cancellationToken).ConfigureAwait(false);
            _ = ConnectAndRelayAsync(client, new UnixDomainSocketEndPoint(socketPath), cancellationToken);
        }
    }

    /// <summary>Waits for the connections still open (the agent is gone by now, so they end at once) and stops serving.</summary>
    public async Task CloseAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var listener in _listeners)
            listener.Dispose();
        // Once no loop accepts any more, the list below is every connection there was.
        await Task.WhenAll(_accepting).ConfigureAwait(false);
        Task[] open;
        lock (_connections)
            open = [.. _connections];
        // What the agent left open dies with its processes; a far side that keeps a tunnel up is cut after a moment.
        if (!await Task.WhenAll(open).WaitAsync(TimeSpan.FromSeconds(2)).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default).ConfigureAwait(false))
        {
            _proxy?.Dispose();
            await Task.WhenAll(open).WaitAsync(TimeSpan.FromSeconds(2)).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    private async Task AcceptAsync(Socket listener, Func<Socket, Task> serve)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                await _open.WaitAsync(_stop.Token).ConfigureAwait(false);
                client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // Out of descriptors for a moment (EMFILE): keep serving the run rather than going silent.
                _open.Release();
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            var connection = serve(client).ContinueWith(_ => _open.Release(), TaskScheduler.Default);
            lock (_connections)
            {
                _connections.RemoveAll(c => c.IsCompleted);
                _connections.Add(connection);
            }
        }
    }

    private Task ForwardToMcpAsync(Socket client) => ConnectAndRelayAsync(client, new DnsEndPoint(_mcp!.Host, _mcp.Port), _stop.Token);

    private static async Task ConnectAndRelayAsync(Socket client, EndPoint target, CancellationToken cancellationToken)
    {
        using (client)
        {
            using var upstream = target is UnixDomainSocketEndPoint
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await upstream.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                return;
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            await Task.WhenAll(SocketPipe.CopyAsync(client, upstream, 0, stop, _ => true), SocketPipe.CopyAsync(upstream, client, 0, stop, _ => true)).ConfigureAwait(false);
        }
    }

    internal string HostSocket(int port) => Path.Combine(_socketDirectory!, $"{port.ToString(CultureInfo.InvariantCulture)}.sock");

    private static string InsideSocket(int port) => $"{InsideDirectory}/{port.ToString(CultureInfo.InvariantCulture)}.sock";

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var listener in _listeners)
            listener.Dispose();
        _proxy?.Dispose();
        _namespace?.Dispose();
        if (_socketDirectory is not null)
            Directory.Delete(_socketDirectory, recursive: true);
    }
}
