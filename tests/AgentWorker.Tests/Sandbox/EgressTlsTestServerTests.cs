using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// The HTTPS server the egress tests pin names to, checked on its own (no worker): the clients the sandboxed agents use
/// (curl, git) trust its CA file and get the bodies, the repository and the counts the egress tests rely on.
/// </summary>
public sealed class EgressTlsTestServerTests : IAsyncLifetime
{
    private readonly TestCertificateAuthority _authority = new();
    private readonly TempDirectory _dir = new("aw-tls-test");
    private TlsTestServer _server = null!;

    public async Task InitializeAsync() => _server = await TlsTestServer.StartAsync(_authority, ["vendor.test", "other.test"]);

    /// <summary>An HTTPS client that connects every name to the server and trusts only the test CA.</summary>
    private HttpClient Client() => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(_server.Address, _server.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                certificate is X509Certificate2 leaf && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None && _authority.Trusts(leaf),
        },
    });

    [Fact]
    public async Task Root_OverTls_AnswersTheBody_AndCountsTheSniName()
    {
        using var client = Client();

        var body = await client.GetStringAsync($"https://vendor.test:{_server.Port}/");

        Assert.Equal(_server.Body + "\n", body);
        Assert.Equal(1, _server.Handshakes("vendor.test"));
        Assert.Equal(0, _server.Handshakes("other.test"));
        Assert.Equal(1, _server.Connections);
        Assert.Contains($"vendor.test:{_server.Port} /", _server.Requests);
    }

    [Fact]
    public async Task Big_AnswersNMebibytes_OfTheKnownPattern()
    {
        using var client = Client();

        var body = await client.GetByteArrayAsync($"https://other.test:{_server.Port}/big?mb=3");

        Assert.Equal(3 << 20, body.Length);
        Assert.Equal(TlsTestServer.BigSha256(3), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body)));
        Assert.Equal(1, _server.Handshakes("other.test"));
    }

    [Fact]
    public void Curl_WithTheCaFile_VerifiesTheServerByName()
    {
        var ca = _authority.WritePem(_dir.Combine("ca.pem"));

        var (exit, output) = Run("curl", "-sS", "--max-time", "10", "--noproxy", "*", "--cacert", ca, "--resolve", $"vendor.test:{_server.Port}:{_server.Address}",
            $"https://vendor.test:{_server.Port}/");

        Assert.True(exit == 0, output);
        Assert.Equal(_server.Body, output.Trim());
    }

    [Fact]
    public void GitClone_OverTheDumbHttpProtocol_GetsThePublishedRepository()
    {
        using var source = TestRepository.Create(new Dictionary<string, string> { ["MARK"] = "published\n" });
        var path = _server.Publish(source, "repo");
        var ca = _authority.WritePem(_dir.Combine("ca.pem"));

        var (exit, output) = Run("git", "-c", $"http.sslCAInfo={ca}", "-c", $"http.curloptResolve=vendor.test:{_server.Port}:{_server.Address}", "-c", "http.proxy=",
            "clone", "--quiet", $"https://vendor.test:{_server.Port}{path}", _dir.Combine("clone"));

        Assert.True(exit == 0, output);
        Assert.Equal("published\n", File.ReadAllText(_dir.Combine("clone", "MARK")));
        Assert.Contains(_server.Requests, r => r.Contains("/repo.git/info/refs", StringComparison.Ordinal));
    }

    private static (int Exit, string Output) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        foreach (var name in start.Environment.Keys.Where(n => n.StartsWith("GIT_", StringComparison.Ordinal) || n.EndsWith("_proxy", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _authority.Dispose();
        _dir.Dispose();
    }
}
