using System.Net;
using System.Net.Sockets;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// The canaries the egress attack tests count on, checked on their own (no worker): what arrived before
/// <see cref="CountingListener.SettledCountAsync"/> is counted, and its own fence is not.
/// </summary>
public sealed class EgressCanaryTests
{
    [Fact]
    public async Task Tcp_SettledCount_CountsEveryConnectionMadeBefore_AndNotItsFence()
    {
        await using var canary = CountingListener.Tcp("banner\n");
        Assert.Equal(0, await canary.SettledCountAsync());

        foreach (var _ in Enumerable.Range(0, 3))
        {
            using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(IPAddress.Loopback, canary.Port);
        }

        Assert.Equal(3, await canary.SettledCountAsync());
        Assert.Equal(3, await canary.SettledCountAsync());
    }

    [Fact]
    public async Task Tcp_OnIpv6Loopback_CountsConnections()
    {
        await using var canary = CountingListener.Tcp("banner\n", IPAddress.IPv6Loopback);
        using (var client = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp))
            await client.ConnectAsync(IPAddress.IPv6Loopback, canary.Port);

        Assert.Equal(1, await canary.SettledCountAsync());
    }

    [Fact]
    public async Task Udp_SettledCount_CountsEveryDatagramSentBefore_AndNotItsFence()
    {
        await using var canary = CountingListener.Udp();
        using var client = new Socket(SocketType.Dgram, ProtocolType.Udp);

        foreach (var _ in Enumerable.Range(0, 2))
            await client.SendToAsync("canary"u8.ToArray(), SocketFlags.None, new IPEndPoint(IPAddress.Loopback, canary.Port));

        Assert.Equal(2, await canary.SettledCountAsync());
    }
}
