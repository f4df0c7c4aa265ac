using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// A host service an agent may or may not reach: listens on 127.0.0.1 (or an abstract unix socket), reads the
/// request head, answers a fixed reply and counts connections, so a test can prove from the host side that
/// nothing arrived.
/// </summary>
internal sealed class LoopbackServer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _reply;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<string> _requestLines = new();
    private int _connections;

    private LoopbackServer(Socket socket, string reply)
    {
        _socket = socket;
        _reply = Encoding.ASCII.GetBytes(reply);
        _loop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_socket.LocalEndPoint!).Port;

    public int Connections => Volatile.Read(ref _connections);

    /// <summary>The first line of every request received (e.g. <c>GET /path HTTP/1.1</c>).</summary>
    public IReadOnlyList<string> RequestLines => [.. _requestLines];

    /// <summary>Answers every connection with <paramref name="reply"/> as it is (a banner).</summary>
    public static LoopbackServer Tcp(string reply)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen();
        return new LoopbackServer(socket, reply);
    }

    /// <summary>Answers every request with a 200 whose body is <paramref name="body"/>: enough of an MCP server for a GET.</summary>
    public static LoopbackServer Http(string body) =>
        Tcp($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {Encoding.ASCII.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}");

    /// <summary>Answers every request with a 302 to <paramref name="location"/>.</summary>
    public static LoopbackServer Redirect(string location) =>
        Tcp($"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

    /// <summary>An abstract unix socket: not a file, so only a shared network namespace reaches it.</summary>
    public static LoopbackServer Abstract(string name, string reply)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint("\0" + name));
        socket.Listen();
        return new LoopbackServer(socket, reply);
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            Interlocked.Increment(ref _connections);
            _ = AnswerAsync(client);
        }
    }

    private async Task AnswerAsync(Socket client)
    {
        using (client)
        {
            try
            {
                // Read the request head first: closing with unread input would reset the connection and lose the reply.
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(2));
                var head = new List<byte>();
                var buffer = new byte[4096];
                while (head.Count < 64 * 1024 && !EndsHead(head))
                {
                    var read = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                    if (read == 0)
                        break;
                    head.AddRange(buffer.AsSpan(0, read));
                }
                if (head.Count > 0)
                    _requestLines.Enqueue(Encoding.ASCII.GetString([.. head]).Split("\r\n")[0]);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // A client that sends nothing still gets the reply.
            }
            try
            {
                await client.SendAsync(_reply, SocketFlags.None);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }
        }
    }

    private static bool EndsHead(List<byte> head) =>
        head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n';

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _loop;
        _stop.Dispose();
    }
}
