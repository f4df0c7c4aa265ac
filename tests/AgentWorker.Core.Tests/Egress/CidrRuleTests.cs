using System.Net;
using AgentWorker.Core.Egress;

namespace AgentWorker.Core.Tests.Egress;

public sealed class CidrRuleTests
{
    [Theory]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("127.0.0.1:80", "127.0.0.1:80")]
    [InlineData("10.0.0.0/8", "10.0.0.0/8")]
    [InlineData("::1", "::1")]
    [InlineData("[::1]:8080", "[::1]:8080")]
    [InlineData("fd00::/8", "fd00::/8")]
    [InlineData("::ffff:10.0.0.1", "10.0.0.1")]
    public void Parse_RoundTrips(string text, string expected) => Assert.Equal(expected, CidrRule.Parse(text).ToString());

    [Theory]
    [InlineData("localhost")]
    [InlineData("10.0.0.0/33")]
    [InlineData("127.0.0.1:0")]
    [InlineData("[::1")]
    [InlineData("fe80::1%eth0")]
    public void Parse_BadEntry_ThrowsNamingIt(string text) =>
        Assert.Contains($"'{text}'", Assert.Throws<FormatException>(() => CidrRule.Parse(text)).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData("10.20.0.0/16", "10.20.3.4", 443, true)]
    [InlineData("10.20.0.0/16", "10.21.0.1", 443, false)]
    [InlineData("10.20.0.0/16", "::ffff:10.20.0.1", 443, true)]
    [InlineData("127.0.0.2:8443", "127.0.0.2", 8443, true)]
    [InlineData("127.0.0.2:8443", "127.0.0.2", 443, false)]
    [InlineData("127.0.0.2:8443", "::1", 8443, false)]
    public void Matches_AddressAndPort(string rule, string address, int port, bool expected) =>
        Assert.Equal(expected, CidrRule.Parse(rule).Matches(IPAddress.Parse(address), port));
}
