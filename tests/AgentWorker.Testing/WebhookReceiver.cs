using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Testing;

/// <summary>
/// A real HTTP server on a loopback port that records every request it gets and answers each with the status
/// <c>answer(n)</c> gives for the n-th request (1-based), so tests can make a receiver fail and then recover.
/// </summary>
public sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener;
    private readonly Func<int, int> _answer;
    private readonly List<ReceivedRequest> _requests = [];
    private readonly Task _loop;

    private WebhookReceiver(HttpListener listener, Func<int, int> answer)
    {
        _listener = listener;
        _answer = answer;
        Url = new Uri(listener.Prefixes.Single() + "hook?token=in-the-query");
        _loop = Task.Run(ServeAsync);
    }

    public Uri Url { get; }

    public IReadOnlyList<ReceivedRequest> Requests
    {
        get
        {
            lock (_requests)
                return [.. _requests];
        }
    }

    public static WebhookReceiver Start(Func<int, int> answer)
    {
        for (var tries = 0; ; tries++)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                return new WebhookReceiver(listener, answer);
            }
            catch (HttpListenerException) when (tries < 5)
            {
                // The port was taken between the probe and the bind.
                listener.Close();
            }
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            int status;
            lock (_requests)
            {
                status = _answer(_requests.Count + 1);
                _requests.Add(new ReceivedRequest(
                    _requests.Count + 1,
                    context.Request.HttpMethod,
                    context.Request.Url?.PathAndQuery ?? "",
                    context.Request.Headers.AllKeys.OfType<string>().ToDictionary(k => k, k => context.Request.Headers[k] ?? "", StringComparer.OrdinalIgnoreCase),
                    body.ToArray(),
                    status));
            }
            context.Response.StatusCode = status;
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}

/// <summary>One request a <see cref="WebhookReceiver"/> got, and the status it answered.</summary>
public sealed record ReceivedRequest(int Number, string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, byte[] Body, int Status)
{
    public string? Header(string name) => Headers.GetValueOrDefault(name);
}
