using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Testing;

/// <summary>
/// A canary on a loopback address: a TCP listener that counts connections (and answers each with a banner) or a UDP socket
/// that counts datagrams. A test that must show nothing reached the host asserts the count stayed 0.
/// </summary>
public sealed class CountingListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _banner;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<EndPoint, bool> _fences = new();
    private int _count;

    private CountingListener(Socket socket, string banner)
    {
        _socket = socket;
        _banner = System.Text.Encoding.ASCII.GetBytes(banner);
        _loop = socket.SocketType == SocketType.Stream ? AcceptAsync() : ReceiveAsync();
    }

    public IPAddress Address => ((IPEndPoint)_socket.LocalEndPoint!).Address;

    public int Port => ((IPEndPoint)_socket.LocalEndPoint!).Port;

    /// <summary>Connections accepted (TCP) or datagrams received (UDP).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>A TCP listener on <paramref name="address"/> (127.0.0.1 by default), any free port.</summary>
    public static CountingListener Tcp(string banner, IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(address, 0));
        socket.Listen();
        return new CountingListener(socket, banner);
    }

    /// <summary>A UDP socket on <paramref name="address"/> (127.0.0.1 by default), any free port.</summary>
    public static CountingListener Udp(IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(address, 0));
        return new CountingListener(socket, "");
    }

    private async Task AcceptAsync()
    {
        while (true)
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
            if (!Arrived(client.RemoteEndPoint!))
                Interlocked.Increment(ref _count);
            using (client)
            {
                try
                {
                    await client.SendAsync(_banner, SocketFlags.None);
                }
                catch (SocketException)
                {
                }
            }
        }
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[65536];
        while (true)
        {
            try
            {
                var received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0), _stop.Token);
                if (!Arrived(received.RemoteEndPoint))
                    Interlocked.Increment(ref _count);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Marks a fence as arrived; true when <paramref name="from"/> is one (fences are not counted).</summary>
    private bool Arrived(EndPoint from)
    {
        if (!_fences.ContainsKey(from))
            return false;
        _fences[from] = true;
        return true;
    }

    /// <summary>
    /// <see cref="Count"/> once everything sent here before the call has been handled: sends a connection (or datagram) of
    /// its own, not counted, and waits for it. Arrivals are handled in order, so a 0 after this is a 0, not "not yet".
    /// </summary>
    public async Task<int> SettledCountAsync()
    {
        using var fence = new Socket(_socket.AddressFamily, _socket.SocketType, _socket.ProtocolType);
        fence.Bind(new IPEndPoint(Address, 0));
        var from = fence.LocalEndPoint!;
        _fences[from] = false;
        var to = new IPEndPoint(Address, Port);
        if (_socket.SocketType == SocketType.Stream)
            await fence.ConnectAsync(to);
        else
            await fence.SendToAsync("fence"u8.ToArray(), SocketFlags.None, to);
        await Eventually.UntilAsync(() => _fences[from], TimeSpan.FromSeconds(10), $"the fence reached the canary on {to}");
        _fences.TryRemove(from, out _);
        return Count;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _loop;
        _stop.Dispose();
    }
}
