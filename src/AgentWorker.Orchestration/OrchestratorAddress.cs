using System.Net;
using System.Net.Sockets;
using Grpc.Net.Client;

namespace AgentWorker.Orchestration;

/// <summary>
/// Where an orchestrator listens: <c>unix:///path/to.sock</c> (also <c>unix:/path</c>) or TCP as
/// <c>http://host:port</c>, <c>tcp://host:port</c> or <c>host:port</c> (gRPC over cleartext HTTP/2; <c>https://</c> for TLS, dialing only).
/// </summary>
public sealed record OrchestratorAddress
{
    public const string Default = "unix:///tmp/agent-worker-grpc.sock";

    private OrchestratorAddress(string text, string? socketPath, Uri? httpUri)
    {
        Text = text;
        SocketPath = socketPath;
        HttpUri = httpUri;
    }

    /// <summary>As the user wrote it (for logs and messages).</summary>
    public string Text { get; }

    /// <summary>The unix socket path, for unix addresses.</summary>
    public string? SocketPath { get; }

    /// <summary>The HTTP/2 endpoint, for TCP addresses.</summary>
    public Uri? HttpUri { get; }

    public static OrchestratorAddress Parse(string text)
    {
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text.StartsWith("unix://", StringComparison.Ordinal) ? text["unix://".Length..] : text["unix:".Length..];
            if (!path.StartsWith('/'))
                throw new FormatException($"'{text}': a unix socket address needs an absolute path (unix:///path/to.sock)");
            // Linux caps socket paths at 107 bytes.
            if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
                throw new FormatException($"'{text}': socket path longer than 107 bytes");
            return new OrchestratorAddress(text, path, null);
        }
        var uriText = text.StartsWith("tcp://", StringComparison.Ordinal) ? "http://" + text["tcp://".Length..]
            : text.Contains("://", StringComparison.Ordinal) ? text
            : "http://" + text;
        if (!Uri.TryCreate(uriText, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            throw new FormatException($"'{text}' is not unix:///PATH, http://HOST:PORT or HOST:PORT");
        if (uri.AbsolutePath != "/")
            throw new FormatException($"'{text}': an address has no path");
        return new OrchestratorAddress(text, null, uri);
    }

    /// <summary>A channel to this address. <paramref name="dialTimeout"/> bounds connecting; message sizes bound each message both ways.</summary>
    public GrpcChannel CreateChannel(TimeSpan dialTimeout, int maxReceiveBytes, int maxSendBytes)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = dialTimeout,
            // A peer that vanished without closing the connection is noticed by the pings, not only by the next heartbeat.
            KeepAlivePingDelay = TimeSpan.FromSeconds(20),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            EnableMultipleHttp2Connections = true,
            UseProxy = false,
        };
        if (SocketPath is { } path)
        {
            handler.ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }
        return GrpcChannel.ForAddress(HttpUri ?? new Uri("http://localhost"), new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxReceiveBytes,
            MaxSendMessageSize = maxSendBytes,
            DisposeHttpClient = true,
        });
    }

    /// <summary>The IP endpoint a TCP listener binds (host names other than localhost are refused: name an address).</summary>
    public IPEndPoint ListenEndPoint()
    {
        var uri = HttpUri ?? throw new InvalidOperationException("not a TCP address");
        if (uri.Scheme != "http")
            throw new FormatException($"'{Text}': the reference orchestrator listens on cleartext HTTP/2 only (http://HOST:PORT)");
        var address = uri.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(uri.DnsSafeHost, out var ip) ? ip
            : throw new FormatException($"'{Text}': listen on an IP address (or localhost), not a host name");
        return new IPEndPoint(address, uri.Port);
    }

    public override string ToString() => Text;
}
