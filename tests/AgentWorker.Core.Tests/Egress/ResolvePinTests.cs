using System.Net;
using AgentWorker.Core.Egress;

namespace AgentWorker.Core.Tests.Egress;

public sealed class ResolvePinTests
{
    [Theory]
    [InlineData("vendor.test:8443:127.0.0.2", "vendor.test", 8443, "127.0.0.2")]
    [InlineData("API.Vendor.test.:443:[::1]", "api.vendor.test", 443, "::1")]
    [InlineData("gw.test:443:2001:db8::5", "gw.test", 443, "2001:db8::5")]
    public void Parse_Entry_PinsTheCanonicalName(string text, string host, int port, string address) =>
        Assert.Equal(new ResolvePin(host, port, IPAddress.Parse(address)), ResolvePin.Parse(text));

    [Theory]
    [InlineData("vendor.test:127.0.0.2")]
    [InlineData("vendor.test:0:127.0.0.2")]
    [InlineData("vendor.test:443:not-an-address")]
    [InlineData("127.0.0.1:443:127.0.0.2")]
    [InlineData("bad host:443:127.0.0.2")]
    public void Parse_BadEntry_ThrowsNamingIt(string text) =>
        Assert.Contains($"'{text}'", Assert.Throws<FormatException>(() => ResolvePin.Parse(text)).Message, StringComparison.Ordinal);
}
