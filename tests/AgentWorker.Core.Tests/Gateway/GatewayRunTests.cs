using System.Net;
using System.Net.Sockets;
using System.Text;
using AgentWorker.Core.Gateway;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Gateway;

/// <summary>A run's door to the gateway: its placeholder, its variables, and its relay naming the run.</summary>
public sealed class GatewayRunTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private static GatewayRun Open(EndPoint gateway, Action<GatewayRun>? closed = null) => new(
        new GatewayRunRequest("job", "coder", [ModelVendor.Presets["openai"], ModelVendor.Presets["anthropic"]], ModelBudget.None, _ => ValueTask.CompletedTask),
        new UsageMeter(ModelBudget.None, PriceTable.Empty), gateway, closed ?? (_ => { }));

    [Fact]
    public void Placeholder_IsAcceptedFromThisRunOnly_AndNotAfterItEnds()
    {
        var closed = new List<GatewayRun>();
        using var a = Open(new IPEndPoint(IPAddress.Loopback, 1), closed.Add);
        using var b = Open(new IPEndPoint(IPAddress.Loopback, 1));

        Assert.StartsWith("awgw-", a.Placeholder, StringComparison.Ordinal);
        Assert.NotEqual(a.Placeholder, b.Placeholder);
        Assert.NotEqual(a.Token, b.Token);
        Assert.True(a.Accepts(a.Placeholder));
        Assert.False(b.Accepts(a.Placeholder));
        Assert.False(a.Accepts(a.Placeholder[..^1]));
        Assert.False(a.Accepts(null));

        a.Dispose();

        Assert.False(a.Accepts(a.Placeholder));
        Assert.Equal([a], closed);
    }

    [Fact]
    public void Variables_PointEachVendorAtTheGateway_WithThePlaceholderAsItsKey()
    {
        using var run = Open(new IPEndPoint(IPAddress.Loopback, 1));

        var variables = run.Variables(new Uri("http://127.0.0.1:3127/"));

        Assert.Equal("http://127.0.0.1:3127/openai", variables["OPENAI_BASE_URL"]);
        Assert.Equal("http://127.0.0.1:3127/anthropic", variables["ANTHROPIC_BASE_URL"]);
        Assert.Equal(run.Placeholder, variables["OPENAI_API_KEY"]);
        Assert.Equal(run.Placeholder, variables["ANTHROPIC_API_KEY"]);
    }

    [Fact]
    public async Task HostListener_RelaysToTheGateway_BehindTheRunsToken_UntilTheRunEnds()
    {
        var path = _dir.Combine("gw.sock");
        using var gateway = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        gateway.Bind(new UnixDomainSocketEndPoint(path));
        gateway.Listen();
        var run = Open(new UnixDomainSocketEndPoint(path));
        var url = run.ListenOnHost();

        using (var agent = new TcpClient())
        {
            await agent.ConnectAsync(IPAddress.Loopback, url.Port);
            await agent.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n"));
            using var relayed = await gateway.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
            var expected = $"{run.Token}\nGET / HTTP/1.1\r\n";
            var received = new StringBuilder();
            var buffer = new byte[256];
            while (received.Length < expected.Length)
            {
                var read = await relayed.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
                Assert.NotEqual(0, read);
                received.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            Assert.Equal(expected, received.ToString());
        }

        run.Dispose();

        using var late = new TcpClient();
        await Assert.ThrowsAnyAsync<SocketException>(() => late.ConnectAsync(IPAddress.Loopback, url.Port));
    }

    public void Dispose() => _dir.Dispose();
}
