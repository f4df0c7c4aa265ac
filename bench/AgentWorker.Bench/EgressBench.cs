using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sandbox;

namespace AgentWorker.Bench;

/// <summary>
/// What network <c>allowlist</c> costs (issue 16): a sandboxed no-op agent in network none and in allowlist (its namespace
/// built with the proxy ports in it), pairwise; a download through the egress proxy beside the same download straight
/// from the loopback server; and the time a CONNECT through the proxy adds to a direct TCP connect. The server is the
/// bench's own, on 127.0.0.1, reached through a pinned name and a one-address exception, as an operator's gateway would be.
/// </summary>
internal static class EgressBench
{
    private const string Name = "vendor.bench";

    public static async Task<string> RunAsync(int runs, int megabytes, int connects, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), $"agent-worker-egress-bench-{Guid.NewGuid():N}");
        using var server = new TcpListener(IPAddress.Loopback, 0);
        server.Start();
        var port = ((IPEndPoint)server.LocalEndpoint).Port;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var serving = ServeAsync(server, (long)megabytes << 20, stop.Token);
        var policy = new EgressPolicy([new CidrRule(IPAddress.Loopback, 32, port)], [new ResolvePin(Name, port, IPAddress.Loopback)]);
        IReadOnlyList<HostPattern> allow = [HostPattern.Parse($"{Name}:{port}")];
        EgressProxy NewProxy() => new(policy, allow, new EgressOptions { MaxBytes = long.MaxValue }, new EgressJournal(_ => ValueTask.CompletedTask, _ => { }));
        try
        {
            var sandbox = new BubblewrapSandbox(new SandboxOptions { StateDir = Path.Combine(root, "state") }, Cgroups.Detect(), [], []);
            var runner = new ProcessRunner(TimeProvider.System);
            var plain = new NoSandbox();
            List<double> noneOverhead = [], allowlistOverhead = [];
            for (var i = 0; i < runs; i++)
            {
                var plainMs = await SandboxBench.TimeOneAsync(runner, plain, root, $"p{i}", ["true"], cancellationToken);
                noneOverhead.Add(await SandboxBench.TimeOneAsync(runner, sandbox, root, $"n{i}", ["true"], cancellationToken) - plainMs);
                using var proxy = NewProxy();
                allowlistOverhead.Add(await SandboxBench.TimeOneAsync(runner, sandbox, root, $"a{i}", ["true"], cancellationToken,
                    shape: r => r with { Network = NetworkMode.Allowlist, Egress = proxy }) - plainMs);
            }

            using var agentSide = new TcpListener(IPAddress.Loopback, 0);
            agentSide.Start();
            using var downloads = NewProxy();
            // Alternating, three each: the machine's drift hits both alike.
            List<double> direct = [], proxied = [];
            for (var i = 0; i < 3; i++)
            {
                direct.Add(await DownloadAsync(megabytes, () => DirectAsync(port), cancellationToken));
                proxied.Add(await DownloadAsync(megabytes, () => ThroughProxyAsync(agentSide, downloads, port), cancellationToken));
            }

            List<double> directConnect = [], proxiedConnect = [];
            for (var i = 0; i < connects; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using (await DirectAsync(port))
                    directConnect.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                started = Stopwatch.GetTimestamp();
                using (await ThroughProxyAsync(agentSide, downloads, port))
                    proxiedConnect.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }

            var none = Percentiles.Of(noneOverhead);
            var allowlist = Percentiles.Of(allowlistOverhead);
            var added = Percentiles.Of(proxiedConnect.Zip(directConnect, (p, d) => p - d));
            var directRate = Median(direct);
            var proxiedRate = Median(proxied);
            return new JsonObject
            {
                ["bench"] = "egress",
                ["peer"] = "agent-worker",
                ["runs"] = runs,
                ["mib"] = megabytes,
                ["connects"] = connects,
                ["none_overhead_ms_p50"] = SandboxBench.Round(none.P50),
                ["allowlist_overhead_ms_p50"] = SandboxBench.Round(allowlist.P50),
                ["allowlist_overhead_ms_p99"] = SandboxBench.Round(allowlist.P99),
                ["ratio_allowlist_vs_none_overhead_p50"] = Math.Round(allowlist.P50 / none.P50, 3),
                ["direct_mib_per_s"] = Math.Round(directRate, 1),
                ["proxied_mib_per_s"] = Math.Round(proxiedRate, 1),
                ["ratio_proxied_vs_direct_rate"] = Math.Round(proxiedRate / directRate, 3),
                ["connect_added_ms_p50"] = SandboxBench.Round(added.P50),
                ["connect_added_ms_p99"] = SandboxBench.Round(added.P99),
            }.ToJsonString();
        }
        finally
        {
            await stop.CancelAsync();
            server.Stop();
            await serving.ContinueWith(_ => { }, TaskScheduler.Default);
            Directory.Delete(root, recursive: true);
        }
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>Each connection: a one-line request ("GET\n" sends the whole body, anything else is held open until the client closes).</summary>
    private static async Task ServeAsync(TcpListener server, long bytes, CancellationToken cancellationToken)
    {
        var body = new byte[1 << 20];
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await server.AcceptSocketAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var ask = new byte[4];
                    var read = await client.ReceiveAsync(ask, SocketFlags.None, cancellationToken);
                    if (read == 4 && "GET\n"u8.SequenceEqual(ask))
                    {
                        for (var sent = 0L; sent < bytes; sent += body.Length)
                            await client.SendAsync(body, SocketFlags.None, cancellationToken);
                    }
                    else
                    {
                        while (read > 0)
                            read = await client.ReceiveAsync(ask, SocketFlags.None, cancellationToken);
                    }
                }
            }, cancellationToken);
        }
    }

    private static async Task<Socket> DirectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return socket;
    }

    /// <summary>A CONNECT through the proxy, as an agent's client makes it; returns once the tunnel is up.</summary>
    private static async Task<Socket> ThroughProxyAsync(TcpListener agentSide, EgressProxy proxy, int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync((IPEndPoint)agentSide.LocalEndpoint);
        _ = proxy.ServeAsync(await agentSide.AcceptSocketAsync());
        await socket.SendAsync(Encoding.ASCII.GetBytes($"CONNECT {Name}:{port} HTTP/1.1\r\nHost: {Name}:{port}\r\n\r\n"));
        var answer = new byte[39];
        for (var got = 0; got < answer.Length;)
        {
            var read = await socket.ReceiveAsync(answer.AsMemory(got));
            if (read == 0)
                throw new InvalidOperationException("the proxy closed the connection instead of opening the tunnel");
            got += read;
        }
        if (!answer.AsSpan().StartsWith("HTTP/1.1 200"u8))
            throw new InvalidOperationException($"the proxy answered {Encoding.ASCII.GetString(answer).Split('\r')[0]}");
        return socket;
    }

    /// <summary>MiB per second for the whole body.</summary>
    private static async Task<double> DownloadAsync(int megabytes, Func<Task<Socket>> connect, CancellationToken cancellationToken)
    {
        var buffer = new byte[1 << 16];
        var started = Stopwatch.GetTimestamp();
        using var socket = await connect();
        await socket.SendAsync("GET\n"u8.ToArray(), SocketFlags.None, cancellationToken);
        long total = 0;
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken)) > 0)
            total += read;
        if (total != (long)megabytes << 20)
            throw new InvalidOperationException($"downloaded {total} bytes of {(long)megabytes << 20}");
        return megabytes / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }
}
