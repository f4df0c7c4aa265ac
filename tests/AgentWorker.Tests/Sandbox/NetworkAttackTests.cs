using System.Globalization;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// Hostile agents that reach for host services on loopback. Every address any of them contacts is on
/// 127.0.0.0/8 or an abstract unix socket; name resolution is only tried once no route out exists.
/// </summary>
public sealed class NetworkAttackFixture : SandboxWorkerFixture
{
    /// <summary>Prints the namespace's routes and interfaces, and tries a name lookup only when no route leaves it.</summary>
    /// <summary>What <see cref="InterfacesProbe"/> prints in a namespace with only <c>lo</c>: no route (the header line only), no lookup.</summary>
    internal static void AssertOnlyLoopback(AgentRun run)
    {
        run.AssertFinished();
        Assert.StartsWith("Iface", Assert.Single(run.Values("ROUTE")), StringComparison.Ordinal);
        Assert.All(run.Values("ROUTE6"), r => Assert.EndsWith(" lo", r, StringComparison.Ordinal));
        Assert.Equal(["lo"], run.Values("DEV"));
        Assert.All(run.Values("SYSNET"), n => Assert.Equal("lo", n));
        Assert.True(run.Printed("NOT-RESOLVED"), run.ToString());
    }

    internal const string InterfacesProbe = """
            sed 's/^/ROUTE /' /proc/net/route
            sed 's/^/ROUTE6 /' /proc/net/ipv6_route
            tail -n +3 /proc/net/dev | sed 's/^ *//; s/:.*//; s/^/DEV /'
            if [ -d /sys/class/net ]; then ls /sys/class/net | sed 's/^/SYSNET /'; fi
            # Only with no route out can a lookup not leave the host, even if the sandbox is broken.
            if [ "$(tail -n +2 /proc/net/route | wc -l)" -eq 0 ] && ! grep -qv ' lo$' /proc/net/ipv6_route; then
              if getent hosts example.com; then echo RESOLVED; else echo NOT-RESOLVED; fi
            else
              echo RESOLUTION-SKIPPED
            fi
            echo DONE
            """;

    private LoopbackServer? _canary;
    private LoopbackServer? _abstractCanary;
    private LoopbackServer? _mcp;

    /// <summary>What the canaries answer: seeing it in a job log means the agent reached them.</summary>
    public string Banner => $"canary-{Nonce}";

    public string McpBody => $"mcp-pong-{Nonce}";

    public string AbstractName => $"aw-abstract-{Nonce}";

    internal LoopbackServer Canary => _canary!;
    internal LoopbackServer AbstractCanary => _abstractCanary!;
    internal LoopbackServer Mcp => _mcp!;

    public string McpUrl => $"http://127.0.0.1:{Mcp.Port}/mcp";

    /// <summary>The worker's own HTTP port, the canary on another port of the MCP host, and the abstract socket, as probe.py arguments.</summary>
    public string Targets => string.Create(CultureInfo.InvariantCulture, $"{Port} {Canary.Port} @{AbstractName}");

    protected override Task PrepareAsync()
    {
        _canary = LoopbackServer.Tcp(Banner + "\n");
        _abstractCanary = LoopbackServer.Abstract(AbstractName, Banner + "\n");
        _mcp = LoopbackServer.Http(McpBody);
        return Task.CompletedTask;
    }

    protected override async ValueTask ReleaseAsync()
    {
        foreach (var server in new[] { _canary, _abstractCanary, _mcp })
        {
            if (server is not null)
                await server.DisposeAsync();
        }
    }

    protected override IReadOnlyDictionary<string, string> RepositoryFiles => new Dictionary<string, string>
    {
        // Connects to each target (a TCP port on 127.0.0.1, or @name for an abstract unix socket), sends an
        // HTTP GET /health and prints what came back.
        ["probe.py"] = """
            import socket, sys

            def probe(label, family, address):
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(3)
                try:
                    s.connect(address)
                except OSError as e:
                    print("REFUSED", label, e.errno, flush=True)
                    return
                print("CONNECTED", label, flush=True)
                data = b""
                try:
                    s.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    while len(data) < 65536:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                for line in data.decode("latin-1").splitlines():
                    print("REPLY", label, line, flush=True)
                s.close()

            for target in sys.argv[1:]:
                if target.startswith("@"):
                    probe(target, socket.AF_UNIX, "\0" + target[1:])
                else:
                    probe(target, socket.AF_INET, ("127.0.0.1", int(target)))
            """,
    };

    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("probe", """
            python3 probe.py $1
            echo ok > written && echo "WROTE $(cat written)"
            echo DONE
            """),
        new("interfaces", InterfacesProbe),
        new("mcp-client", """
            set -- $1
            echo "MCP-URL $MCP_CONNECTION_URL"
            curl -sS --max-time 5 "$MCP_CONNECTION_URL" | sed 's/^/MCP-REPLY /'
            echo
            hostport=$(echo "$MCP_CONNECTION_URL" | sed -E 's#^[a-z]+://([^/]+).*#\1#')
            # The forwarder abused as an HTTP proxy, a CONNECT tunnel, and with another Host header.
            curl -sS --max-time 5 -x "http://$hostport" "http://127.0.0.1:$1/health" | sed 's/^/VIA-PROXY /'
            echo
            curl -sS --max-time 5 -p -x "http://$hostport" "http://127.0.0.1:$2/" | sed 's/^/VIA-TUNNEL /'
            echo
            curl -sS --max-time 5 -H "Host: 127.0.0.1:$1" "http://$hostport/health" | sed 's/^/VIA-HOST /'
            echo
            python3 probe.py "$@"
            echo DONE
            """),
    ];
}

/// <summary>
/// Network containment per mode: no mode shares the host's network namespace. none, mcp_only and full see nothing of the
/// host but (for mcp_only) the MCP server; full reaches public hosts only through the egress proxy (EgressAttackTests).
/// </summary>
public sealed class NetworkAttackTests(NetworkAttackFixture fixture) : IClassFixture<NetworkAttackFixture>
{
    public static TheoryData<string> EmptyNamespaceModes => ["none", "mcp_only", "full"];

    private string? McpUrlFor(string network) => network == "mcp_only" ? fixture.McpUrl : null;

    [Theory]
    [MemberData(nameof(EmptyNamespaceModes))]
    public async Task ConnectToHostLoopbackServices_IsRefused(string network)
    {
        var canaryBefore = fixture.Canary.Connections;
        var abstractBefore = fixture.AbstractCanary.Connections;

        var run = await fixture.RunAsync("probe", fixture.Targets, network, McpUrlFor(network));

        run.AssertFinished();
        Assert.Equal(3, run.Values("REFUSED").Count);
        Assert.Empty(run.Values("CONNECTED"));
        Assert.DoesNotContain(run.Lines, l => l.Contains("uptimeSeconds", StringComparison.Ordinal) || l.Contains(fixture.Banner, StringComparison.Ordinal));
        Assert.Equal(canaryBefore, fixture.Canary.Connections);
        Assert.Equal(abstractBefore, fixture.AbstractCanary.Connections);
        Assert.Equal("ok", run.Value("WROTE"));
    }

    [Theory]
    [MemberData(nameof(EmptyNamespaceModes))]
    public async Task NetworkInterfaces_OnlyLoopbackAndNoRoute(string network)
    {
        var run = await fixture.RunAsync("interfaces", network: network, mcpUrl: McpUrlFor(network));

        NetworkAttackFixture.AssertOnlyLoopback(run);
    }

    [Fact]
    public async Task McpOnly_ReachesTheMcpServer_AndNothingElseThroughTheForwarder()
    {
        var canaryBefore = fixture.Canary.Connections;
        var mcpBefore = fixture.Mcp.Connections;

        var run = await fixture.RunAsync("mcp-client", $"{fixture.Port} {fixture.Canary.Port}", "mcp_only", fixture.McpUrl);

        run.AssertFinished();
        // Allowed: the MCP server answers through MCP_CONNECTION_URL.
        Assert.Equal(fixture.McpBody, run.Value("MCP-REPLY"));
        Assert.True(fixture.Mcp.Connections > mcpBefore);
        // Not allowed: the worker's port and another port of the MCP host, directly or through the forwarder.
        Assert.Empty(run.Values("CONNECTED"));
        Assert.DoesNotContain(run.Lines, l => l.Contains("uptimeSeconds", StringComparison.Ordinal) || l.Contains(fixture.Banner, StringComparison.Ordinal));
        Assert.Equal(canaryBefore, fixture.Canary.Connections);
    }

    /// <summary>Job ids may have 128 characters; the run's directory (and the forwarder's socket in it) is named after the id.</summary>
    [Fact]
    public async Task McpOnly_WithTheLongestJobId_StillReachesTheMcpServer()
    {
        var id = $"mcp-{Guid.NewGuid():N}".PadRight(128, 'x');

        var run = await fixture.RunAsync("mcp-client", $"{fixture.Port} {fixture.Canary.Port}", "mcp_only", fixture.McpUrl, id: id);

        run.AssertFinished();
        Assert.Equal(fixture.McpBody, run.Value("MCP-REPLY"));
    }

    [Fact]
    public async Task None_AgentStillRunsAndWritesItsWorkspace()
    {
        var run = await fixture.RunAsync("probe", fixture.Targets, "none");

        Assert.Equal("succeeded", run.State);
        Assert.Equal("ok", run.Value("WROTE"));
    }

    /// <summary>
    /// The control: the same probe run on the host (no sandbox) reaches all three, so the refusals above are the sandbox's
    /// doing and not a probe that cannot connect. (full no longer shares the host's network: it is no control any more.)
    /// </summary>
    [Fact]
    public async Task Probe_OnTheHost_ReachesTheServicesItIsRefusedInTheSandbox()
    {
        var canaryBefore = fixture.Canary.Connections;
        var start = new System.Diagnostics.ProcessStartInfo("python3") { RedirectStandardOutput = true, WorkingDirectory = fixture.RepoPath };
        start.ArgumentList.Add("probe.py");
        foreach (var target in fixture.Targets.Split(' '))
            start.ArgumentList.Add(target);

        using var probe = System.Diagnostics.Process.Start(start)!;
        var lines = (await probe.StandardOutput.ReadToEndAsync()).Split('\n');
        await probe.WaitForExitAsync();

        Assert.Equal(3, lines.Count(l => l.StartsWith("CONNECTED ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith($"REPLY {fixture.Port} ", StringComparison.Ordinal) && l.Contains("uptimeSeconds", StringComparison.Ordinal));
        Assert.Contains($"REPLY {fixture.Canary.Port} {fixture.Banner}", lines);
        Assert.Contains($"REPLY @{fixture.AbstractName} {fixture.Banner}", lines);
        Assert.True(fixture.Canary.Connections > canaryBefore);
    }
}
