using System.Net;
using System.Net.Sockets;
using AgentWorker.Core.Egress;

namespace AgentWorker.Core.Tests.Egress;

/// <summary>The egress decision with a resolver that answers from a table and records every lookup: no network is used.</summary>
public sealed class EgressPolicyTests
{
    private static readonly HostPattern[] OpenAi = [HostPattern.Parse("api.openai.com"), HostPattern.Parse("*.example.com:8443")];

    private readonly List<string> _lookups = [];

    private EgressPolicy Policy(string[]? cidrs = null, string[]? pins = null) =>
        new([.. (cidrs ?? []).Select(CidrRule.Parse)], [.. (pins ?? []).Select(ResolvePin.Parse)], (host, _) =>
        {
            _lookups.Add(host);
            return host switch
            {
                "api.openai.com" or "public.test" => Task.FromResult(new[] { IPAddress.Parse("93.184.216.34") }),
                "a.example.com" => Task.FromResult(new[] { IPAddress.Parse("2606:2800:220:1::1") }),
                "intranet.test" => Task.FromResult(new[] { IPAddress.Parse("10.0.0.1") }),
                "mixed.test" => Task.FromResult(new[] { IPAddress.Parse("93.184.216.34"), IPAddress.Parse("169.254.169.254") }),
                "mapped.test" => Task.FromResult(new[] { IPAddress.Parse("::ffff:127.0.0.1") }),
                "empty.test" => Task.FromResult(Array.Empty<IPAddress>()),
                _ => Task.FromException<IPAddress[]>(new SocketException((int)SocketError.HostNotFound)),
            };
        });

    private Task<EgressDecision> DecideAsync(EgressPolicy policy, string host, int port = 443, IReadOnlyList<HostPattern>? allow = null) =>
        policy.DecideAsync(host, port, allow, CancellationToken.None);

    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.0.9", "loopback")]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("0.1.2.3", "unspecified")]
    [InlineData("10.1.2.3", "private")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.0.1", "private")]
    [InlineData("100.64.0.1", "carrier-grade NAT")]
    [InlineData("100.127.255.255", "carrier-grade NAT")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("239.255.255.250", "multicast")]
    [InlineData("255.255.255.255", "reserved")]
    [InlineData("240.0.0.1", "reserved")]
    [InlineData("192.0.2.1", "reserved")]
    [InlineData("198.18.0.1", "reserved")]
    [InlineData("::1", "loopback")]
    [InlineData("::", "unspecified")]
    [InlineData("fc00::1", "private")]
    [InlineData("fd12:3456::1", "private")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("::ffff:169.254.169.254", "link-local")]
    [InlineData("::127.0.0.1", "reserved")]
    [InlineData("::ffff:0:10.0.0.1", "reserved")]
    [InlineData("64:ff9b::10.0.0.1", "private")]
    [InlineData("64:ff9b::127.0.0.1", "loopback")]
    [InlineData("64:ff9b:1::a00:1", "reserved")]
    [InlineData("2002:7f00:1::", "loopback")]
    [InlineData("2002:a9fe:a9fe::", "link-local")]
    [InlineData("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved")]
    [InlineData("2001:db8::1", "reserved")]
    public void Classify_NonPublic_SaysWhy(string address, string kind) => Assert.Equal(kind, EgressPolicy.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("93.184.216.34")]
    [InlineData("1.1.1.1")]
    [InlineData("172.32.0.1")]
    [InlineData("100.128.0.1")]
    [InlineData("2606:2800:220:1::1")]
    [InlineData("64:ff9b::808:808")]
    [InlineData("2002:808:808::")]
    public void Classify_Public_IsNull(string address) => Assert.Null(EgressPolicy.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("2130706433")]
    [InlineData("0177.0.0.1")]
    [InlineData("0x7f.0.0.1")]
    [InlineData("0x7f.1")]
    [InlineData("127.1")]
    [InlineData("127.0.0.1.")]
    [InlineData("[::ffff:127.0.0.1]")]
    [InlineData("::ffff:7f00:1")]
    public async Task DecideAsync_LoopbackInAnySpelling_IsRefusedAsLoopbackWithoutALookup(string host)
    {
        var decision = await DecideAsync(Policy(), host);

        Assert.False(decision.Allowed);
        Assert.Contains("127.0.0.1 is a loopback address", decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_lookups);
    }

    [Theory]
    [InlineData("[::1]", "::1 is a loopback address")]
    [InlineData("0.0.0.0", "0.0.0.0 is a unspecified address")]
    [InlineData("169.254.169.254", "169.254.169.254 is a link-local address")]
    [InlineData("10.0.0.1", "10.0.0.1 is a private address")]
    public async Task DecideAsync_NonPublicLiteral_IsRefusedWithoutALookup(string host, string reason)
    {
        var decision = await DecideAsync(Policy(), host, allow: null);

        Assert.False(decision.Allowed);
        Assert.Equal(reason, decision.Reason);
        Assert.Empty(_lookups);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("LOCALHOST.")]
    [InlineData("redis.localhost")]
    public async Task DecideAsync_Localhost_IsRefusedByNameWithoutALookup(string host)
    {
        var decision = await DecideAsync(Policy(), host);

        Assert.False(decision.Allowed);
        Assert.Contains("names this machine", decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_lookups);
    }

    [Theory]
    [InlineData("bad host", "spaces or control characters")]
    [InlineData("evil\r\n.test", "spaces or control characters")]
    [InlineData("a..b", "not a valid host name")]
    [InlineData("", "empty host")]
    [InlineData("1.2.3.999", "neither a valid IPv4 address nor a host name")]
    public async Task DecideAsync_InvalidName_IsRefusedWithAReasonWithoutALookup(string host, string reason)
    {
        var decision = await DecideAsync(Policy(), host);

        Assert.False(decision.Allowed);
        Assert.Contains(reason, decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_NameLongerThan253_IsRefusedWithoutALookup()
    {
        var decision = await DecideAsync(Policy(), string.Join('.', Enumerable.Repeat(new string('a', 63), 4)));

        Assert.Equal("host name longer than 253 characters", decision.Reason);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_NameNotInTheAllowList_IsRefusedWithoutALookup()
    {
        var decision = await DecideAsync(Policy(), "public.test", allow: OpenAi);

        Assert.False(decision.Allowed);
        Assert.Equal("not in the allow list", decision.Reason);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_ListedNameOnAnotherPort_IsRefusedNamingThePortWithoutALookup()
    {
        var decision = await DecideAsync(Policy(), "api.openai.com", port: 22, allow: OpenAi);

        Assert.Equal("port 22 not allowed for api.openai.com", decision.Reason);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_PublicLiteralNotInTheAllowList_IsRefused()
    {
        var decision = await DecideAsync(Policy(), "93.184.216.34", allow: OpenAi);

        Assert.Equal("not in the allow list", decision.Reason);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_ListedName_IsAllowedWithTheCheckedAddress()
    {
        var decision = await DecideAsync(Policy(), "API.OpenAI.com.", allow: OpenAi);

        Assert.True(decision.Allowed);
        Assert.Equal("api.openai.com", decision.Host);
        Assert.Equal(IPAddress.Parse("93.184.216.34"), decision.Address);
        Assert.Equal("allowed", decision.Reason);
    }

    [Fact]
    public async Task DecideAsync_SubdomainPattern_AdmitsSubdomainsOnItsPort()
    {
        var policy = Policy();

        Assert.True((await DecideAsync(policy, "a.example.com", 8443, OpenAi)).Allowed);
        Assert.False((await DecideAsync(policy, "example.com", 8443, OpenAi)).Allowed);
    }

    [Theory]
    [InlineData("intranet.test", "'intranet.test' resolves to 10.0.0.1, a private address")]
    [InlineData("mixed.test", "'mixed.test' resolves to 169.254.169.254, a link-local address")]
    [InlineData("mapped.test", "'mapped.test' resolves to ::ffff:127.0.0.1, a loopback address")]
    public async Task DecideAsync_NameResolvingToANonPublicAddress_IsRefused(string host, string reason)
    {
        var decision = await DecideAsync(Policy(), host);

        Assert.False(decision.Allowed);
        Assert.Equal(reason, decision.Reason);
    }

    [Theory]
    [InlineData("nowhere.test", "cannot resolve 'nowhere.test'")]
    [InlineData("empty.test", "'empty.test' has no addresses")]
    public async Task DecideAsync_Unresolvable_IsRefusedAndMarked(string host, string reason)
    {
        var decision = await DecideAsync(Policy(), host);

        Assert.False(decision.Allowed);
        Assert.True(decision.Unresolved);
        Assert.StartsWith(reason, decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecideAsync_PinnedName_UsesThePinNotDns()
    {
        var decision = await DecideAsync(Policy(pins: ["api.openai.com:443:1.1.1.1"]), "api.openai.com", allow: OpenAi);

        Assert.True(decision.Allowed);
        Assert.Equal(IPAddress.Parse("1.1.1.1"), decision.Address);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_PinOnAnotherPort_DoesNotApply()
    {
        var decision = await DecideAsync(Policy(pins: ["public.test:8443:1.1.1.1"]), "public.test");

        Assert.Equal(IPAddress.Parse("93.184.216.34"), decision.Address);
        Assert.Equal(["public.test"], _lookups);
    }

    [Fact]
    public async Task DecideAsync_NamePinnedToLoopback_IsRefused()
    {
        var decision = await DecideAsync(Policy(pins: ["api.openai.com:443:127.0.0.1"]), "api.openai.com", allow: OpenAi);

        Assert.False(decision.Allowed);
        Assert.Equal("'api.openai.com' resolves to 127.0.0.1, a loopback address", decision.Reason);
        Assert.Empty(_lookups);
    }

    [Fact]
    public async Task DecideAsync_PinnedToAnAllowedCidr_IsAllowedOnThatPortOnly()
    {
        var policy = Policy(cidrs: ["127.0.0.2:8443"], pins: ["a.example.com:8443:127.0.0.2", "a.example.com:443:127.0.0.2"]);
        HostPattern[] allow = [HostPattern.Parse("*.example.com:8443"), HostPattern.Parse("*.example.com")];

        var allowed = await DecideAsync(policy, "a.example.com", 8443, allow);
        var otherPort = await DecideAsync(policy, "a.example.com", 443, allow);

        Assert.True(allowed.Allowed);
        Assert.Equal(IPAddress.Parse("127.0.0.2"), allowed.Address);
        Assert.False(otherPort.Allowed);
        Assert.Contains("loopback", otherPort.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecideAsync_NoAllowList_AllowsAnyPublicHost()
    {
        var decision = await DecideAsync(Policy(), "public.test", 8080);

        Assert.True(decision.Allowed);
        Assert.Equal(8080, decision.Port);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65536)]
    public async Task DecideAsync_BadPort_IsRefused(int port) =>
        Assert.False((await DecideAsync(Policy(), "public.test", port)).Allowed);

    [Fact]
    public async Task DecideAsync_IdnName_IsCheckedAsPunycode()
    {
        var decision = await DecideAsync(Policy(), "bücher.example", allow: [HostPattern.Parse("xn--bcher-kva.example")]);

        Assert.Equal("xn--bcher-kva.example", decision.Host);
        Assert.Equal(["xn--bcher-kva.example"], _lookups);
    }
}
