using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AgentWorker.Core.Egress;

/// <summary>
/// A run's way out: the agent's HTTP proxy (CONNECT and absolute-URI requests) and SOCKS5 proxy (CONNECT, names resolved
/// here) on the same connections, told apart by the first byte. Every request is decided by the <see cref="EgressPolicy"/>
/// before anything is connected, and only the address the policy checked is connected to. A refusal answers in the
/// agent's protocol (HTTP 403 with a one-line reason, SOCKS5 reply 2). Limits per run: connections at once, bytes up and
/// down together, and an idle timeout per connection.
/// </summary>
public sealed class EgressProxy(EgressPolicy policy, IReadOnlyList<HostPattern>? allowHosts, EgressOptions options, EgressJournal journal) : IDisposable
{
    private const int MaxHead = 16 * 1024;
    private static readonly TimeSpan HeadTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RearmEvery = TimeSpan.FromMilliseconds(250);
    private static readonly byte[] SocksRefused = [5, 2, 0, 1, 0, 0, 0, 0, 0, 0];

    private readonly CancellationTokenSource _stop = new();
    private int _open;
    private long _bytes;
    private int _disposed;

    /// <summary>Also admitted past <see cref="EgressOptions.MaxConnections"/>, to be refused with the reason; beyond, connections wait in the backlog.</summary>
    public int MaxOpen => options.MaxConnections + 16;

    /// <summary>
    /// Serves one connection from the agent until it or the far side closes, the run ends or a limit is hit. Every request
    /// read is recorded, whatever happens after: a refusal before it is answered, an allowed connection when it ends.
    /// </summary>
    public async Task ServeAsync(Socket client)
    {
        var started = Stopwatch.GetTimestamp();
        var open = Interlocked.Increment(ref _open);
        using var head = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        head.CancelAfter(HeadTimeout);
        try
        {
            using (client)
            {
                Request? request;
                try
                {
                    request = await ReadRequestAsync(client, head.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
                {
                    return;
                }
                if (request is null)
                    return;
                var decision = await DecideAsync(request, open, head.Token).ConfigureAwait(false);
                if (!decision.Allowed || decision.Address is not { } address)
                {
                    await RecordAsync(request, decision, EgressEvent.Refused, decision.Reason, 0, 0, started).ConfigureAwait(false);
                    await request.RefuseAsync(client, decision.Reason, head.Token).ConfigureAwait(false);
                    return;
                }
                await ForwardAsync(client, request, decision, address, started).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
        {
            // The agent went away or the run ended while it was being answered.
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    private async Task<EgressDecision> DecideAsync(Request request, int open, CancellationToken cancellationToken)
    {
        var refusal = Interlocked.Read(ref _bytes) >= options.MaxBytes ? $"the run moved its {options.MaxBytes / (1024 * 1024)} MiB (EGRESS_MAX_MB)"
            : open > options.MaxConnections ? $"more than {options.MaxConnections} connections at once (EGRESS_MAX_CONNECTIONS)"
            : request.Error;
        if (refusal is not null)
            return new EgressDecision(false, request.Host, request.Port, null, refusal);
        try
        {
            return await policy.DecideAsync(request.Host, request.Port, allowHosts, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
            return new EgressDecision(false, request.Host, request.Port, null, $"no decision within {HeadTimeout.TotalSeconds:0}s (name resolution too slow)");
        }
    }

    private async Task ForwardAsync(Socket client, Request request, EgressDecision decision, IPAddress address, long started)
    {
        var reason = decision.Reason;
        Task<long>? up = null, down = null;
        try
        {
            using var upstream = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var connect = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                connect.CancelAfter(ConnectTimeout);
                await upstream.ConnectAsync(new IPEndPoint(address, request.Port), connect.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !_stop.IsCancellationRequested)
            {
                reason = $"cannot connect to {address}: {(e is SocketException s ? s.SocketErrorCode.ToString() : "timed out")}";
                await request.FailAsync(client, reason, e as SocketException, _stop.Token).ConfigureAwait(false);
                return;
            }
            await request.AcceptAsync(client, upstream, _stop.Token).ConfigureAwait(false);
            using var idle = new CancellationTokenSource(options.IdleTimeout);
            using var end = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, idle.Token);
            // Re-arming the timer on every read costs a lock; four times a second is as good for a timeout counted in seconds.
            var armed = Stopwatch.GetTimestamp();
            bool OnRead(int read)
            {
                if (Stopwatch.GetElapsedTime(armed) >= RearmEvery)
                {
                    armed = Stopwatch.GetTimestamp();
                    idle.CancelAfter(options.IdleTimeout);
                }
                return Interlocked.Add(ref _bytes, read) <= options.MaxBytes;
            }
            up = SocketPipe.CopyAsync(client, upstream, request.Leftover.Length, end, OnRead);
            down = SocketPipe.CopyAsync(upstream, client, 0, end, OnRead);
            // A forwarded request asked for Connection: close, so the answer's end is the exchange's end.
            if (request.Protocol == "http")
                await down.ContinueWith(_ => end.CancelAsync(), TaskScheduler.Default).Unwrap().ConfigureAwait(false);
            await Task.WhenAll(up, down).ConfigureAwait(false);
            reason = Interlocked.Read(ref _bytes) > options.MaxBytes ? $"closed: the run moved its {options.MaxBytes / (1024 * 1024)} MiB (EGRESS_MAX_MB)"
                : idle.IsCancellationRequested ? $"closed: idle for {options.IdleTimeout.TotalSeconds:0}s (EGRESS_IDLE_TIMEOUT_SECONDS)"
                : decision.Reason;
        }
        finally
        {
            await RecordAsync(request, decision, EgressEvent.Allowed, reason,
                up is { IsCompletedSuccessfully: true } ? up.Result : 0, down is { IsCompletedSuccessfully: true } ? down.Result : 0, started).ConfigureAwait(false);
        }
    }

    // Recorded under the policy's spelling of the host (lower case, punycode), so one host is one summary row.
    private ValueTask RecordAsync(Request request, EgressDecision decision, string verdict, string reason, long up, long down, long started) =>
        journal.RecordAsync(new EgressEvent(decision.Host.Length > 253 ? decision.Host[..253] : decision.Host, request.Port, decision.Address?.ToString(), verdict, reason, request.Protocol, up, down,
            (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds));

    /// <summary>Reads the request: SOCKS5 when the first byte is 5, else an HTTP request head. Null when the agent closed first.</summary>
    private static async Task<Request?> ReadRequestAsync(Socket client, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxHead];
        var length = await client.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        if (length == 0)
            return null;
        if (buffer[0] == 5)
            return await SocksRequest.ReadAsync(client, buffer, length, cancellationToken).ConfigureAwait(false);
        int end;
        while ((end = buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (length == buffer.Length)
                return HttpRequest.Malformed("the request head is longer than 16 KiB");
            var read = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
                return null;
            length += read;
        }
        return HttpRequest.Parse(Encoding.Latin1.GetString(buffer, 0, end), buffer.AsMemory(end + 4, length - end - 4));
    }

    /// <summary>Ends every connection still open (the run is over).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _stop.Cancel();
    }

    /// <summary>What the agent asked for, and how to answer it in its protocol.</summary>
    private abstract class Request(string host, int port, string protocol)
    {
        public string Host { get; } = host;
        public int Port { get; } = port;
        public string Protocol { get; } = protocol;

        /// <summary>Why the request cannot be served whatever the policy says (malformed, unsupported), or null.</summary>
        public string? Error { get; init; }

        /// <summary>Bytes after the request the agent already sent (the start of an HTTP body).</summary>
        public ReadOnlyMemory<byte> Leftover { get; init; }

        public abstract Task RefuseAsync(Socket client, string reason, CancellationToken cancellationToken);

        public abstract Task FailAsync(Socket client, string reason, SocketException? error, CancellationToken cancellationToken);

        /// <summary>Tells the agent the tunnel is up, or sends the rewritten request upstream.</summary>
        public abstract Task AcceptAsync(Socket client, Socket upstream, CancellationToken cancellationToken);
    }

    private sealed class HttpRequest(string host, int port, string protocol) : Request(host, port, protocol)
    {
        private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase) { "Host", "Proxy-Connection", "Proxy-Authorization", "Connection", "Keep-Alive" };

        private byte[]? _forward;

        public static HttpRequest Malformed(string error) => new("-", 0, "http") { Error = error };

        public static HttpRequest Parse(string head, ReadOnlyMemory<byte> leftover)
        {
            var lines = head.Split("\r\n");
            var parts = lines[0].Split(' ');
            if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
                return Malformed("not an HTTP/1 request");
            var (method, target) = (parts[0], parts[1]);
            if (method == "CONNECT")
            {
                return Uri.TryCreate($"tcp://{target}", UriKind.Absolute, out var tunnel) && tunnel.Port > 0 && tunnel.AbsolutePath == "/"
                    ? new HttpRequest(HostOf(tunnel), tunnel.Port, "connect") { Leftover = leftover }
                    : Malformed($"CONNECT needs host:port, not '{target}'");
            }
            if (!Uri.TryCreate(target, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
                return Malformed("a proxy request needs an absolute http:// URL (https goes through CONNECT)");
            // Sent upstream in origin form, one request per connection.
            var forward = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{method} {uri.PathAndQuery} {parts[2]}\r\n");
            // The Host header names what was decided, not what the agent wrote there.
            forward.Append(CultureInfo.InvariantCulture, $"Host: {uri.Authority}\r\n");
            foreach (var line in lines.Skip(1))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0 && !HopByHop.Contains(line[..colon].Trim()))
                    forward.Append(line).Append("\r\n");
            }
            forward.Append("Connection: close\r\n\r\n");
            return new HttpRequest(HostOf(uri), uri.Port, "http") { _forward = [.. Encoding.Latin1.GetBytes(forward.ToString()), .. leftover.Span], Leftover = leftover };
        }

        private static string HostOf(Uri uri) => uri.HostNameType == UriHostNameType.IPv6 ? uri.Host.Trim('[', ']') : uri.Host;

        public override Task RefuseAsync(Socket client, string reason, CancellationToken cancellationToken) =>
            AnswerAsync(client, "403 Forbidden", $"agent-worker egress: refused {Host}:{Port}: {reason}", cancellationToken);

        public override Task FailAsync(Socket client, string reason, SocketException? error, CancellationToken cancellationToken) =>
            AnswerAsync(client, "502 Bad Gateway", $"agent-worker egress: {Host}:{Port}: {reason}", cancellationToken);

        public override async Task AcceptAsync(Socket client, Socket upstream, CancellationToken cancellationToken)
        {
            if (_forward is null)
                await client.SendAsync("HTTP/1.1 200 Connection established\r\n\r\n"u8.ToArray(), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            // A tunnel's early bytes (sent before the 200) follow it; a request's were appended to it.
            await upstream.SendAsync(_forward ?? Leftover, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }

        private static async Task AnswerAsync(Socket client, string status, string line, CancellationToken cancellationToken)
        {
            var body = Encoding.UTF8.GetBytes(line + "\n");
            var head = Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
            await client.SendAsync((byte[])[.. head, .. body], SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>SOCKS5 (RFC 1928) without authentication: CONNECT only, to an IPv4, IPv6 or domain-name address.</summary>
    private sealed class SocksRequest(string host, int port) : Request(host, port, "socks5")
    {
        public static async Task<Request?> ReadAsync(Socket client, byte[] buffer, int length, CancellationToken cancellationToken)
        {
            async Task<bool> Fill(int count)
            {
                while (length < count)
                {
                    var read = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                        return false;
                    length += read;
                }
                return true;
            }

            if (!await Fill(2).ConfigureAwait(false) || !await Fill(2 + buffer[1]).ConfigureAwait(false))
                return null;
            var methods = buffer.AsSpan(2, buffer[1]);
            if (!methods.Contains((byte)0))
            {
                await client.SendAsync((byte[])[5, 0xFF], SocketFlags.None, cancellationToken).ConfigureAwait(false);
                return new SocksRequest("-", 0) { Error = "SOCKS5 without authentication only" };
            }
            await client.SendAsync((byte[])[5, 0], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            var start = 2 + buffer[1];
            if (!await Fill(start + 5).ConfigureAwait(false))
                return null;
            var (command, type) = (buffer[start + 1], buffer[start + 3]);
            var addressLength = type switch { 1 => 4, 4 => 16, 3 => 1 + buffer[start + 4], _ => -1 };
            if (addressLength < 0)
                return new SocksRequest("-", 0) { Error = $"SOCKS5 address type {type} is unknown" };
            if (!await Fill(start + 4 + addressLength + 2).ConfigureAwait(false))
                return null;
            var address = buffer.AsSpan(start + 4, addressLength);
            var host = type == 3 ? Encoding.ASCII.GetString(address[1..]) : new IPAddress(address).ToString();
            var port = buffer[start + 4 + addressLength] << 8 | buffer[start + 5 + addressLength];
            return new SocksRequest(host, port)
            {
                Error = command == 1 ? null : $"SOCKS5 command {command} is not supported (CONNECT only: no UDP, no BIND)",
            };
        }

        public override Task RefuseAsync(Socket client, string reason, CancellationToken cancellationToken) =>
            client.SendAsync(SocksRefused, SocketFlags.None, cancellationToken).AsTask();

        public override Task FailAsync(Socket client, string reason, SocketException? error, CancellationToken cancellationToken)
        {
            // Reply codes: 5 connection refused, 4 host unreachable, 1 general failure.
            byte code = error?.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => 5,
                SocketError.HostUnreachable or SocketError.NetworkUnreachable => 4,
                _ => 1,
            };
            return client.SendAsync((byte[])[5, code, 0, 1, 0, 0, 0, 0, 0, 0], SocketFlags.None, cancellationToken).AsTask();
        }

        public override Task AcceptAsync(Socket client, Socket upstream, CancellationToken cancellationToken) =>
            client.SendAsync((byte[])[5, 0, 0, 1, 0, 0, 0, 0, 0, 0], SocketFlags.None, cancellationToken).AsTask();
    }
}
