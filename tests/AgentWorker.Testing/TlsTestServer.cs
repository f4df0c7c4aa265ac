using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Testing;

/// <summary>
/// An HTTPS server on a loopback address of its own (127.0.0.2 and up), with a leaf of a <see cref="TestCertificateAuthority"/>
/// for the names a test pins to it. It serves a fixed body on <c>/</c>, <c>/big?mb=N</c> (N MiB of <see cref="WriteBig"/>), and
/// published bare repositories over git's dumb HTTP protocol; it counts TCP connections and TLS handshakes per SNI name, so a
/// test can show from the server's side that a refused name never arrived.
/// </summary>
public sealed class TlsTestServer : IAsyncDisposable
{
    /// <summary>The pattern of <see cref="WriteBig"/> repeats every 251 bytes; a chunk holds a whole number of periods.</summary>
    private const int Period = 251;
    private static readonly byte[] Chunk = [.. Enumerable.Range(0, Period * 256).Select(i => (byte)(i % Period))];

    private readonly WebApplication _app;
    private readonly TempDirectory _root;
    private readonly ConcurrentDictionary<string, int> _handshakes = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentQueue<string> _requests = new();
    private int _connections;

    private TlsTestServer(WebApplication app, TempDirectory root, IPAddress address, string body)
    {
        _app = app;
        _root = root;
        Address = address;
        Body = body;
    }

    public IPAddress Address { get; }

    public int Port { get; private set; }

    /// <summary>What <c>GET /</c> answers.</summary>
    public string Body { get; }

    /// <summary>TCP connections accepted, whatever came over them.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>TLS handshakes that named <paramref name="name"/> (SNI); <c>""</c> counts those that named none.</summary>
    public int Handshakes(string name) => _handshakes.TryGetValue(name, out var count) ? count : 0;

    /// <summary>Every request as <c>Host path?query</c>, in arrival order.</summary>
    public IReadOnlyList<string> Requests => [.. _requests];

    /// <summary><c>address:port</c>, as EGRESS_ALLOW_CIDRS and EGRESS_RESOLVE take it.</summary>
    public string EndPoint => $"{Address}:{Port}";

    /// <summary>
    /// Starts on <paramref name="port"/> (0: any free one) of the first free address from 127.0.0.2 on, tried from a random
    /// one so that servers of tests running side by side get addresses of their own.
    /// </summary>
    public static async Task<TlsTestServer> StartAsync(TestCertificateAuthority authority, IReadOnlyList<string> names, int port = 0, string body = "hello from the test server")
    {
        var first = Random.Shared.Next(0, 253);
        IOException? last = null;
        for (var i = 0; i < 253; i++)
        {
            var address = new IPAddress([127, 0, 0, (byte)(2 + (first + i) % 253)]);
            var server = Create(authority, names, address, port, body);
            try
            {
                await server._app.StartAsync();
                server.Port = new Uri(server._app.Urls.Single()).Port;
                return server;
            }
            catch (IOException e)
            {
                last = e;
                await server.DisposeAsync();
            }
        }
        throw new InvalidOperationException($"no loopback address had port {port} free", last);
    }

    private static TlsTestServer Create(TestCertificateAuthority authority, IReadOnlyList<string> names, IPAddress address, int port, string body)
    {
        var certificate = authority.Issue(names, [address]);
        var root = new TempDirectory("aw-tls");
        File.SetUnixFileMode(root.Path, (UnixFileMode)0b111_101_101);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        TlsTestServer? server = null;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(address, port, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.Use(next => connection =>
            {
                Interlocked.Increment(ref server!._connections);
                return next(connection);
            });
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificateSelector = (_, name) =>
                {
                    server!._handshakes.AddOrUpdate(name ?? "", 1, (_, count) => count + 1);
                    return certificate;
                },
            });
        }));
        var app = builder.Build();
        server = new TlsTestServer(app, root, address, body);
        app.Use((context, next) =>
        {
            server._requests.Enqueue($"{context.Request.Host} {context.Request.Path}{context.Request.QueryString}");
            return next(context);
        });
        app.MapGet("/", () => Results.Text(body + "\n"));
        app.MapGet("/big", async (HttpContext context, int mb) =>
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = mb * (1L << 20);
            await WriteBig(context.Response.Body, mb * (1L << 20), context.RequestAborted);
        });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = new PhysicalFileProvider(root.Path),
            // A bare repository's files (HEAD, info/refs, objects/..) have no extension git's dumb protocol cares about.
            ServeUnknownFileTypes = true,
            DefaultContentType = "application/octet-stream",
        });
        return server;
    }

    /// <summary>
    /// Publishes <paramref name="source"/> as <c>/{name}.git</c> for the dumb HTTP protocol (a bare clone, packed, with
    /// <c>git update-server-info</c>); returns the path.
    /// </summary>
    public string Publish(TestRepository source, string name)
    {
        var bare = _root.Combine($"{name}.git");
        TestRepository.Git(_root.Path, "clone", "--quiet", "--bare", "--no-local", source.Path, bare);
        TestRepository.Git(bare, "repack", "-a", "-d", "--quiet");
        TestRepository.Git(bare, "update-server-info");
        return $"/{name}.git";
    }

    /// <summary>Writes <paramref name="bytes"/> bytes of the body <c>/big</c> serves (byte i is i mod 251).</summary>
    public static async Task WriteBig(Stream stream, long bytes, CancellationToken cancellationToken = default)
    {
        for (var left = bytes; left > 0; left -= Chunk.Length)
            await stream.WriteAsync(Chunk.AsMemory(0, (int)Math.Min(left, Chunk.Length)), cancellationToken);
    }

    /// <summary>The SHA-256 (lower-case hex) of <c>/big?mb=<paramref name="mb"/></c>, as <c>sha256sum</c> prints it.</summary>
    public static string BigSha256(int mb)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (var left = mb * (1L << 20); left > 0; left -= Chunk.Length)
            hash.AppendData(Chunk, 0, (int)Math.Min(left, Chunk.Length));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _root.Dispose();
    }
}
