using AgentWorker.Core.Egress;

namespace AgentWorker.Core.Tests.Egress;

public sealed class HostPatternTests
{
    [Theory]
    [InlineData("api.openai.com", "api.openai.com:443")]
    [InlineData("API.OpenAI.com.", "api.openai.com:443")]
    [InlineData("example.com:80", "example.com:80")]
    [InlineData("*.example.com:8443", "*.example.com:8443")]
    [InlineData("bücher.example", "xn--bcher-kva.example:443")]
    [InlineData("93.184.216.34", "93.184.216.34:443")]
    [InlineData("[2001:db8::1]:8443", "[2001:db8::1]:8443")]
    [InlineData("under_score.example", "under_score.example:443")]
    public void Parse_ValidEntry_IsCanonical(string text, string expected) => Assert.Equal(expected, HostPattern.Parse(text).ToString());

    [Theory]
    [InlineData("", "empty host")]
    [InlineData("api openai.com", "spaces or control characters")]
    [InlineData("api.openai.com\n", "spaces or control characters")]
    [InlineData("a..b", "not a valid host name")]
    [InlineData("-a.example", "not a valid host name")]
    [InlineData("*", "not a valid host name")]
    [InlineData("*.1.2.3.4", "not an address")]
    [InlineData("example.com:0", "bad port")]
    [InlineData("example.com:65536", "bad port")]
    [InlineData("example.com:http", "bad port")]
    [InlineData("[::1", "missing ']'")]
    [InlineData("1.2.3.999", "neither a valid IPv4 address nor a host name")]
    [InlineData("fe80::1%eth0", "not a host name or address")]
    public void Parse_BadEntry_ThrowsNamingIt(string text, string because)
    {
        var e = Assert.Throws<FormatException>(() => HostPattern.Parse(text));

        Assert.Contains($"'{text}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(because, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NameLongerThan253_IsRefused()
    {
        var name = string.Join('.', Enumerable.Repeat(new string('a', 60), 5));

        Assert.Contains("longer than 253", Assert.Throws<FormatException>(() => HostPattern.Parse(name)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("api.openai.com", "api.openai.com", 443, true)]
    [InlineData("api.openai.com", "api.openai.com", 80, false)]
    [InlineData("api.openai.com", "evil.api.openai.com", 443, false)]
    [InlineData("api.openai.com", "api.openai.com.evil.test", 443, false)]
    [InlineData("*.example.com", "a.example.com", 443, true)]
    [InlineData("*.example.com", "a.b.example.com", 443, true)]
    [InlineData("*.example.com", "example.com", 443, false)]
    [InlineData("*.example.com", "badexample.com", 443, false)]
    [InlineData("example.com:80", "example.com", 80, true)]
    [InlineData("example.com:80", "example.com", 443, false)]
    public void Matches_HostAndPort(string pattern, string host, int port, bool expected) =>
        Assert.Equal(expected, HostPattern.Parse(pattern).Matches(host, port));

    [Theory]
    [InlineData("*.example.com", "a.example.com", true)]
    [InlineData("*.example.com", "*.a.example.com", true)]
    [InlineData("*.example.com", "*.example.com", true)]
    [InlineData("*.example.com", "example.com", false)]
    [InlineData("*.example.com", "*.example.com:80", false)]
    [InlineData("a.example.com", "*.a.example.com", false)]
    [InlineData("a.example.com", "a.example.com", true)]
    public void Covers_NarrowerEntry(string wide, string narrow, bool expected) =>
        Assert.Equal(expected, HostPattern.Parse(wide).Covers(HostPattern.Parse(narrow)));
}
