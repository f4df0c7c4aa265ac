using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

/// <summary>A run's door to the gateway: its placeholder, its variables, and its relay naming the run.</summary>
public sealed class GatewayRunTests
{
    private static GatewayRun Open(Func<Socket, GatewayRun, Task>? serve = null) => new(
        new GatewayRunRequest("job", "coder", [ModelVendor.Presets["openai"], ModelVendor.Presets["anthropic"]], ModelBudget.None, _ => ValueTask.CompletedTask),
        new UsageMeter(ModelBudget.None, PriceTable.Empty), serve ?? ((_, _) => Task.CompletedTask));

    [Fact]
    public void Placeholder_IsAcceptedFromThisRunOnly_AndNotAfterItEnds()
    {
        using var a = Open();
        using var b = Open();

        Assert.StartsWith("awgw-", a.Placeholder, StringComparison.Ordinal);
        Assert.NotEqual(a.Placeholder, b.Placeholder);
        Assert.True(a.Accepts(a.Placeholder));
        Assert.False(b.Accepts(a.Placeholder));
        Assert.False(a.Accepts(a.Placeholder[..^1]));
        Assert.False(a.Accepts(null));

        a.Dispose();

        Assert.False(a.Accepts(a.Placeholder));
    }

    [Fact]
    public void Variables_PointEachVendorAtTheGateway_WithThePlaceholderAsItsKey()
    {
        using var run = Open();

        var variables = run.Variables(new Uri("http://127.0.0.1:3127/"));

        Assert.Equal("http://127.0.0.1:3127/openai", variables["OPENAI_BASE_URL"]);
        Assert.Equal("http://127.0.0.1:3127/anthropic", variables["ANTHROPIC_BASE_URL"]);
        Assert.Equal(run.Placeholder, variables["OPENAI_API_KEY"]);
        Assert.Equal(run.Placeholder, variables["ANTHROPIC_API_KEY"]);
    }

    [Fact]
    public async Task HostListener_HandsEachConnectionToTheGatewayAsThisRuns_UntilTheRunEnds()
    {
        var handed = Channel.CreateUnbounded<(Socket Socket, GatewayRun Run)>();
        var run = Open((socket, owner) => handed.Writer.WriteAsync((socket, owner)).AsTask());
        var url = run.ListenOnHost();

        using (var agent = new TcpClient())
        {
            await agent.ConnectAsync(IPAddress.Loopback, url.Port);
            await agent.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n"));
            var (socket, owner) = await handed.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            using (socket)
            {
                Assert.Same(run, owner);
                var buffer = new byte[64];
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Equal("GET / HTTP/1.1\r\n", Encoding.ASCII.GetString(buffer, 0, read));
            }
        }

        run.Dispose();

        Assert.True(run.Ended.IsCancellationRequested);
        using var late = new TcpClient();
        await Assert.ThrowsAnyAsync<SocketException>(() => late.ConnectAsync(IPAddress.Loopback, url.Port));
        // A connection accepted elsewhere (the run's namespace) after the end is closed, not served.
        using var pair = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await run.ServeAsync(pair);
        Assert.False(handed.Reader.TryRead(out _));
        Assert.Throws<ObjectDisposedException>(() => pair.Available);
    }

}
