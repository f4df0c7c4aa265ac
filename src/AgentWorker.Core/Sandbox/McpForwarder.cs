using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// Network mode <c>mcp_only</c>: the agent's network namespace is empty; the only way out is a unix socket
/// bind-mounted into the sandbox, behind which this forwarder connects to the job's MCP host and port — and
/// nothing else. Inside, <c>agent-worker sandbox forward</c> listens on loopback and relays to that socket; the
/// MCP host name resolves to 127.0.0.1 through the sandbox's /etc/hosts, so TLS names still match.
/// </summary>
public sealed class McpForwarder : IDisposable
{
    public const string InsideSocket = "/run/agent-worker/mcp.sock";

    // One agent must not exhaust the worker's file descriptors through its socket.
    private const int MaxConnections = 64;

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _connections = new(MaxConnections, MaxConnections);

    private McpForwarder(Uri target, string socketPath, Socket listener)
    {
        Host = target.Host;
        Port = target.Port;
        SocketPath = socketPath;
        _listener = listener;
        // Ports below 1024 cannot be bound without privileges inside the sandbox; 80 becomes 8080, 443 8443.
        InsidePort = Port >= 1024 ? Port : 8000 + Port;
        InsideUrl = new UriBuilder(target) { Port = InsidePort }.Uri.AbsoluteUri;
    }

    public string Host { get; }
    public int Port { get; }
    public string SocketPath { get; }
    public int InsidePort { get; }

    /// <summary>What the agent gets as MCP_CONNECTION_URL.</summary>
    public string InsideUrl { get; }

    public static McpForwarder Start(string mcpUrl, string socketPath)
    {
        if (!Uri.TryCreate(mcpUrl, UriKind.Absolute, out var target) || target.Port <= 0)
            throw new SandboxException($"MCP URL '{mcpUrl}' has no host and port to forward to");
        File.Delete(socketPath);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(64);
        // The agent runs as another (mapped) user; the socket file must be connectable by it.
        File.SetUnixFileMode(socketPath, (UnixFileMode)0x1FF);
        var forwarder = new McpForwarder(target, socketPath, listener);
        _ = forwarder.AcceptAsync();
        return forwarder;
    }

    /// <summary>The inside half: accepts on <paramref name="listen"/> and relays each connection to <paramref name="socketPath"/>.</summary>
    public static async Task RelayInsideAsync(IPEndPoint listen, string socketPath, TaskCompletionSource listening, CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(listen);
        listener.Start();
        listening.TrySetResult();
        while (!cancellationToken.IsCancellationRequested)
        {
            var client = await listener.AcceptTcpClientAsync(cancellationToken).ConfigureAwait(false);
            _ = RelayAsync(client.Client, async ct =>
            {
                var upstream = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await upstream.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                return upstream;
            }, cancellationToken);
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                await _connections.WaitAsync(_stop.Token).ConfigureAwait(false);
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // Out of descriptors for a moment (EMFILE): keep serving the run rather than going silent.
                _connections.Release();
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            _ = RelayAsync(client, async ct =>
            {
                var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await upstream.ConnectAsync(Host, Port, ct).ConfigureAwait(false);
                return upstream;
            }, _stop.Token).ContinueWith(_ => _connections.Release(), TaskScheduler.Default);
        }
    }

    private static async Task RelayAsync(Socket client, Func<CancellationToken, Task<Socket>> connect, CancellationToken cancellationToken)
    {
        using (client)
        {
            Socket upstream;
            try
            {
                upstream = await connect(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                return;
            }
            using (upstream)
            {
                await using var a = new NetworkStream(client, ownsSocket: false);
                await using var b = new NetworkStream(upstream, ownsSocket: false);
                try
                {
                    await Task.WhenAll(Pipe(a, b, upstream, cancellationToken), Pipe(b, a, client, cancellationToken)).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                {
                }
            }
        }
    }

    private static async Task Pipe(Stream from, Stream to, Socket toSocket, CancellationToken cancellationToken)
    {
        await from.CopyToAsync(to, cancellationToken).ConfigureAwait(false);
        // Half-close so the other side sees end of request while the answer still flows back.
        toSocket.Shutdown(SocketShutdown.Send);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        File.Delete(SocketPath);
    }
}
