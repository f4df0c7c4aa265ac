using System.Net;
using AgentWorker.Core.Egress;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Tests.Orchestration;

/// <summary>
/// The web tools' policy decision on its own: scheme, resolution and the address check, with a resolver that
/// answers from a table. Nothing here opens a connection, so private, link-local and public addresses can be
/// tested without sending them traffic.
/// </summary>
public sealed class UrlPolicyTests
{
    private readonly List<string> _lookups = [];

    private UrlPolicy Policy(params string[] allow) =>
        new([.. allow.Select(CidrRule.Parse)], (host, _) =>
        {
            _lookups.Add(host);
            return Task.FromResult(host switch
            {
                "metadata.test" => [IPAddress.Parse("169.254.169.254")],
                "intranet.test" => [IPAddress.Parse("10.0.0.1")],
                "mixed.test" => [IPAddress.Parse("93.184.216.34"), IPAddress.Parse("10.0.0.1")],
                "public.test" => [IPAddress.Parse("93.184.216.34")],
                "v6.test" => [IPAddress.Parse("fd00::5")],
                _ => Array.Empty<IPAddress>(),
            });
        });

    private async Task<string> DeniedAsync(UrlPolicy policy, string url)
    {
        var e = await Assert.ThrowsAsync<TaskRefusedException>(() => policy.CheckAsync(url, CancellationToken.None));
        Assert.Equal(ErrorCode.PolicyDenied, e.Code);
        return e.Message;
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/", "link-local")]
    [InlineData("http://10.0.0.1/", "private")]
    [InlineData("http://172.16.5.4/", "private")]
    [InlineData("http://192.168.1.1/", "private")]
    [InlineData("http://100.64.0.1/", "carrier-grade NAT")]
    [InlineData("http://127.0.0.2:8080/", "loopback")]
    [InlineData("http://0.0.0.0/", "unspecified")]
    [InlineData("http://224.0.0.1/", "multicast")]
    [InlineData("http://255.255.255.255/", "reserved")]
    [InlineData("http://[::1]/", "loopback")]
    [InlineData("http://[fe80::1]/", "link-local")]
    [InlineData("http://[fc00::1]/", "private")]
    [InlineData("http://[::ffff:169.254.169.254]/", "link-local")]
    [InlineData("http://[64:ff9b::a00:1]/", "private")]
    [InlineData("http://[2002:a00:1::]/", "private")]
    [InlineData("http://2130706433/", "loopback")]
    public async Task CheckAsync_AddressLiteralNotPublic_IsDeniedWithoutALookup(string url, string kind)
    {
        var message = await DeniedAsync(Policy(), url);

        Assert.Contains($"a {kind} address", message, StringComparison.Ordinal);
        Assert.Empty(_lookups);
    }

    [Theory]
    [InlineData("http://metadata.test/", "'metadata.test' resolves to 169.254.169.254, a link-local address")]
    [InlineData("https://intranet.test/wiki", "'intranet.test' resolves to 10.0.0.1, a private address")]
    [InlineData("http://mixed.test/", "'mixed.test' resolves to 10.0.0.1, a private address")]
    [InlineData("http://v6.test/", "'v6.test' resolves to fd00::5, a private address")]
    public async Task CheckAsync_NameResolvingToANonPublicAddress_IsDenied(string url, string because)
    {
        var message = await DeniedAsync(Policy(), url);

        Assert.Contains(because, message, StringComparison.Ordinal);
        Assert.Single(_lookups);
    }

    [Fact]
    public async Task CheckAsync_PublicName_IsAllowedAndPinnedToTheCheckedAddress()
    {
        var decision = await Policy().CheckAsync("https://public.test/page?q=1", CancellationToken.None);

        Assert.Equal(IPAddress.Parse("93.184.216.34"), decision.Address);
        Assert.Equal("public.test", decision.Host);
        Assert.Equal(443, decision.Port);
    }

    [Fact]
    public async Task CheckAsync_PublicLiteral_IsAllowed()
    {
        var decision = await Policy().CheckAsync("http://93.184.216.34:8080/", CancellationToken.None);

        Assert.Equal(IPAddress.Parse("93.184.216.34"), decision.Address);
        Assert.Empty(_lookups);
    }

    [Theory]
    [InlineData("file:///etc/passwd", "scheme 'file'")]
    [InlineData("ftp://public.test/x", "scheme 'ftp'")]
    [InlineData("gopher://public.test/", "scheme 'gopher'")]
    [InlineData("http://user:secret@public.test/", "credentials in URLs")]
    [InlineData("http://public.test/\u0000", "control characters")]
    public async Task CheckAsync_NotPlainHttp_IsDenied(string url, string because) =>
        Assert.Contains(because, await DeniedAsync(Policy(), url), StringComparison.Ordinal);

    [Fact]
    public async Task CheckAsync_CidrRuleWithPort_AdmitsOnlyThatPort()
    {
        var policy = Policy("127.0.0.1:8080");

        Assert.Equal(8080, (await policy.CheckAsync("http://127.0.0.1:8080/", CancellationToken.None)).Port);
        Assert.Contains("loopback", await DeniedAsync(policy, "http://127.0.0.1:8081/"), StringComparison.Ordinal);
        Assert.Contains("loopback", await DeniedAsync(policy, "http://[::1]:8080/"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckAsync_CidrRuleBlock_AdmitsTheBlockOnly()
    {
        var policy = Policy("10.0.0.0/8", "[::1]:9000");

        Assert.NotNull(await policy.CheckAsync("http://intranet.test/", CancellationToken.None));
        Assert.NotNull(await policy.CheckAsync("http://[::1]:9000/", CancellationToken.None));
        Assert.Contains("private", await DeniedAsync(policy, "http://192.168.0.1/"), StringComparison.Ordinal);
        // One refused address refuses the name, even beside allowed ones.
        Assert.Contains("link-local", await DeniedAsync(policy, "http://metadata.test/"), StringComparison.Ordinal);
    }
}
