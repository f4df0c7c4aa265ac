using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Jobs;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Egress;

/// <summary>
/// The egress proxy spoken to as an agent would (HTTP CONNECT, absolute-URI requests, SOCKS5), with a loopback "vendor"
/// reached only through a pinned name and a one-address-and-port exception for it.
/// </summary>
public sealed class EgressProxyTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private readonly TcpListener _vendor = new(IPAddress.Loopback, 0);
    private readonly TcpListener _agentSide = new(IPAddress.Loopback, 0);
    private readonly ConcurrentQueue<EgressEvent> _events = new();
    private readonly ConcurrentQueue<string> _counted = new();
    private readonly List<Task> _served = [];

    public EgressProxyTests()
    {
        _vendor.Start();
        _agentSide.Start();
        _journal = new EgressJournal(e =>
        {
            Assert.Equal(JobEventKind.Egress, e.Kind);
            _events.Enqueue(JsonSerializer.Deserialize<EgressEvent>(e.Message, AgentWorker.Core.Pipeline.ResultJson.Options)!);
            return ValueTask.CompletedTask;
        }, _counted.Enqueue);
    }

    private int VendorPort => ((IPEndPoint)_vendor.LocalEndpoint).Port;

    private readonly EgressJournal _journal;

    private EgressProxy Proxy(EgressOptions? options = null) => new(
        new EgressPolicy([new CidrRule(IPAddress.Loopback, 32, VendorPort)], [new ResolvePin("vendor.test", VendorPort, IPAddress.Loopback), new ResolvePin("other.test", VendorPort, IPAddress.Loopback)]),
        [HostPattern.Parse($"vendor.test:{VendorPort}")],
        options ?? new EgressOptions(),
        _journal);

    /// <summary>A connection from "the agent", served by <paramref name="proxy"/>.</summary>
    private async Task<Socket> ConnectAsync(EgressProxy proxy)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync((IPEndPoint)_agentSide.LocalEndpoint);
        _served.Add(proxy.ServeAsync(await _agentSide.AcceptSocketAsync()));
        return client;
    }

    private static async Task<string> ReadUntilClosedAsync(Socket socket)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Deadline)) > 0)
            text.Append(Encoding.Latin1.GetString(buffer, 0, read));
        return text.ToString();
    }

    private static async Task<string> ReadAsync(Socket socket, int bytes)
    {
        var buffer = new byte[bytes];
        var got = 0;
        while (got < bytes)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(got)).AsTask().WaitAsync(Deadline);
            if (read == 0)
                break;
            got += read;
        }
        return Encoding.Latin1.GetString(buffer, 0, got);
    }

    private static Task SendAsync(Socket socket, string text) => socket.SendAsync(Encoding.Latin1.GetBytes(text));

    private async Task<EgressEvent> EventAsync(Func<EgressEvent, bool> match) =>
        await Eventually.UntilAsync(() => Task.FromResult(_events.FirstOrDefault(match)), e => e is not null, Deadline, "the egress event") ?? throw new InvalidOperationException();

    [Fact]
    public async Task Connect_ToTheAllowedName_TunnelsToThePinnedAddress_AndRecordsTheBytes()
    {
        using var proxy = Proxy();
        using var agent = await ConnectAsync(proxy);

        await SendAsync(agent, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\nHost: vendor.test:{VendorPort}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", await ReadAsync(agent, 39), StringComparison.Ordinal);
        using var vendor = await _vendor.AcceptSocketAsync().WaitAsync(Deadline);
        await SendAsync(agent, "ping");
        Assert.Equal("ping", await ReadAsync(vendor, 4));
        await SendAsync(vendor, "pong!");
        Assert.Equal("pong!", await ReadAsync(agent, 5));
        agent.Shutdown(SocketShutdown.Send);
        vendor.Shutdown(SocketShutdown.Send);

        var allowed = await EventAsync(e => e.Decision == EgressEvent.Allowed);
        Assert.Equal(("vendor.test", VendorPort, "127.0.0.1", "connect", 4L, 5L), (allowed.Host, allowed.Port, allowed.Address, allowed.Protocol, allowed.BytesUp, allowed.BytesDown));
        var summary = Assert.Single(await _journal.CloseAsync());
        Assert.Equal(new EgressHostSummary("vendor.test", VendorPort, 1, 0, 4, 5), summary);
        Assert.Equal([EgressEvent.Allowed], _counted);
    }

    [Fact]
    public async Task Connect_ToANameNotAllowed_Answers403WithTheReason_AndConnectsNothing()
    {
        using var proxy = Proxy();
        using var agent = await ConnectAsync(proxy);

        await SendAsync(agent, $"CONNECT other.test:{VendorPort} HTTP/1.1\r\n\r\n");
        var answer = await ReadUntilClosedAsync(agent);

        Assert.StartsWith("HTTP/1.1 403 Forbidden", answer, StringComparison.Ordinal);
        Assert.Contains($"agent-worker egress: refused other.test:{VendorPort}: ", answer, StringComparison.Ordinal);
        var refused = await EventAsync(e => e.Decision == EgressEvent.Refused);
        Assert.Equal(("other.test", "connect", 0L), (refused.Host, refused.Protocol, refused.BytesUp));
        Assert.EndsWith(refused.Reason + "\n", answer, StringComparison.Ordinal);
        Assert.False(_vendor.Pending());
    }

    [Fact]
    public async Task AbsoluteUriRequest_GoesUpstreamInOriginForm_WithoutProxyHeaders()
    {
        using var proxy = Proxy();
        using var agent = await ConnectAsync(proxy);
        // Port 80 is not implied by an allow-list entry, so the request names the vendor's port.
        // The Host header names another site (fronting): upstream gets the one that was decided.
        await SendAsync(agent, $"POST http://vendor.test:{VendorPort}/v1/chat?x=1 HTTP/1.1\r\nHost: other.test\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9v\r\nContent-Length: 2\r\n\r\nhi");

        using var vendor = await _vendor.AcceptSocketAsync().WaitAsync(Deadline);
        var expected = $"POST /v1/chat?x=1 HTTP/1.1\r\nHost: vendor.test:{VendorPort}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        Assert.Equal(expected, await ReadAsync(vendor, expected.Length));
        await SendAsync(vendor, "HTTP/1.1 204 No Content\r\n\r\n");
        vendor.Shutdown(SocketShutdown.Both);
        // The agent keeps its side open: the answer's end is the exchange's end all the same.
        Assert.Equal("HTTP/1.1 204 No Content\r\n\r\n", await ReadUntilClosedAsync(agent));
        Assert.Equal("http", (await EventAsync(e => e.Decision == EgressEvent.Allowed)).Protocol);
    }

    [Fact]
    public async Task Socks5_ConnectByName_IsAllowedOrRefusedByTheSameList()
    {
        using var proxy = Proxy();
        using var allowed = await ConnectAsync(proxy);
        using var refused = await ConnectAsync(proxy);

        foreach (var (agent, name) in new[] { (allowed, "vendor.test"), (refused, "other.test") })
        {
            await agent.SendAsync(new byte[] { 5, 1, 0 });
            Assert.Equal("\x05\x00", await ReadAsync(agent, 2));
            await agent.SendAsync((byte[])[5, 1, 0, 3, (byte)name.Length, .. Encoding.ASCII.GetBytes(name), (byte)(VendorPort >> 8), (byte)VendorPort]);
        }

        Assert.Equal(0, (await ReadAsync(allowed, 10))[1]);
        using var vendor = await _vendor.AcceptSocketAsync().WaitAsync(Deadline);
        Assert.Equal(2, (await ReadAsync(refused, 10))[1]);
        var refusal = await EventAsync(e => e.Decision == EgressEvent.Refused);
        Assert.Equal(("other.test", "socks5"), (refusal.Host, refusal.Protocol));
    }

    [Fact]
    public async Task Socks5_UdpAssociate_IsRefusedAsUnsupported()
    {
        using var proxy = Proxy();
        using var agent = await ConnectAsync(proxy);

        await agent.SendAsync(new byte[] { 5, 1, 0 });
        await ReadAsync(agent, 2);
        await agent.SendAsync((byte[])[5, 3, 0, 1, 127, 0, 0, 1, (byte)(VendorPort >> 8), (byte)VendorPort]);

        Assert.Equal(2, (await ReadAsync(agent, 10))[1]);
        Assert.Contains("not supported", (await EventAsync(e => e.Decision == EgressEvent.Refused)).Reason, StringComparison.Ordinal);
        Assert.False(_vendor.Pending());
    }

    [Fact]
    public async Task MaxConnections_RefusesTheOneOverTheLimit_NamingTheSetting()
    {
        using var proxy = Proxy(new EgressOptions { MaxConnections = 1 });
        using var first = await ConnectAsync(proxy);
        await SendAsync(first, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", await ReadAsync(first, 39), StringComparison.Ordinal);

        using var second = await ConnectAsync(proxy);
        await SendAsync(second, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\n\r\n");

        Assert.Contains("EGRESS_MAX_CONNECTIONS", await ReadUntilClosedAsync(second), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MaxBytes_ClosesTheTunnelThatCrossesIt_AndRefusesTheNextConnection()
    {
        using var proxy = Proxy(new EgressOptions { MaxBytes = 10 });
        using var agent = await ConnectAsync(proxy);
        await SendAsync(agent, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\n\r\n");
        await ReadAsync(agent, 39);
        using var vendor = await _vendor.AcceptSocketAsync().WaitAsync(Deadline);

        await SendAsync(vendor, new string('x', 64));
        await ReadUntilClosedAsync(agent);
        Assert.Contains("EGRESS_MAX_MB", (await EventAsync(e => e.Decision == EgressEvent.Allowed)).Reason, StringComparison.Ordinal);

        using var next = await ConnectAsync(proxy);
        await SendAsync(next, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\n\r\n");
        Assert.Contains("EGRESS_MAX_MB", await ReadUntilClosedAsync(next), StringComparison.Ordinal);
    }

    [Fact]
    public async Task IdleTimeout_ClosesAQuietTunnel_AndSaysSo()
    {
        using var proxy = Proxy(new EgressOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        using var agent = await ConnectAsync(proxy);
        await SendAsync(agent, $"CONNECT vendor.test:{VendorPort} HTTP/1.1\r\n\r\n");
        await ReadAsync(agent, 39);

        await ReadUntilClosedAsync(agent);

        Assert.Contains("idle", (await EventAsync(e => e.Decision == EgressEvent.Allowed)).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Journal_LogsTheFirstThousandDecisions_AndSumsTheHostsPastAHundredInOneRow()
    {
        var logged = new List<NewJobEvent>();
        var journal = new EgressJournal(e =>
        {
            logged.Add(e);
            return ValueTask.CompletedTask;
        }, _ => { });

        for (var i = 0; i < EgressJournal.MaxEvents + 5; i++)
            await journal.RecordAsync(new EgressEvent($"h{i}.test", 443, null, EgressEvent.Refused, "not in the allow list", "connect", 0, 0, 1));
        var summary = await journal.CloseAsync();

        Assert.Equal(EgressJournal.MaxEvents, logged.Count(e => e.Kind == JobEventKind.Egress));
        Assert.Contains("5 more egress decision(s) not logged", Assert.Single(logged, e => e.Kind == JobEventKind.Log).Message, StringComparison.Ordinal);
        Assert.Equal(EgressJournal.MaxHosts + 1, summary.Count);
        Assert.Equal(new EgressHostSummary(EgressJournal.OtherHosts, 0, 0, EgressJournal.MaxEvents + 5 - EgressJournal.MaxHosts, 0, 0), summary[^1]);
    }

    public void Dispose()
    {
        _vendor.Dispose();
        _agentSide.Dispose();
    }
}
