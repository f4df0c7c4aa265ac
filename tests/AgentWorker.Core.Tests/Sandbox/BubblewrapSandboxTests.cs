using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sandbox;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Sandbox;

/// <summary>The bubblewrap sandbox run directly through the process runner (the attack suite drives it through a worker).</summary>
public sealed class BubblewrapSandboxTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-sandbox");
    private readonly BubblewrapSandbox _sandbox;
    private readonly ProcessRunner _runner = new(TimeProvider.System);

    public BubblewrapSandboxTests()
    {
        _sandbox = new BubblewrapSandbox(new SandboxOptions { StateDir = _dir.Combine("state") }, Cgroups.Detect(), [], []);
        foreach (var sub in new[] { "repo", "home", "scratch" })
            Directory.CreateDirectory(_dir.Combine(sub));
    }

    private SandboxRequest Request(NetworkMode network = NetworkMode.None, string? mcpUrl = null, SandboxLimits? limits = null) =>
        new($"test-{Guid.NewGuid():N}", _dir.Combine("repo"), _dir.Combine("home"), _dir.Combine("scratch"), network, mcpUrl, limits ?? new SandboxLimits());

    private async Task<(ProcessOutcome Outcome, List<string> Lines, ResourceUsage? Usage)> RunAsync(string script, SandboxRequest? request = null, TimeSpan? timeout = null)
    {
        var lines = new ConcurrentQueue<string>();
        using var run = _sandbox.Prepare(request ?? Request());
        var outcome = await _runner.RunAsync(
            new ProcessSpec(["sh", "-c", script], run.WorkspacePath, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, timeout ?? TimeSpan.FromSeconds(30), 1_000_000),
            line =>
            {
                lines.Enqueue(line.Text);
                return ValueTask.CompletedTask;
            },
            CancellationToken.None, run);
        return (outcome, [.. lines], run.ReadUsage());
    }

    [Fact]
    public async Task Run_AgentIsUnprivileged_EvenForARootWorker()
    {
        var (outcome, lines, _) = await RunAsync("id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");

        Assert.Equal(0, outcome.ExitCode);
        Assert.Equal("65534", lines[0]);
        Assert.Contains("CapEff:\t0000000000000000", lines);
        Assert.Contains("CapBnd:\t0000000000000000", lines);
        Assert.Contains("NoNewPrivs:\t1", lines);
        Assert.Contains("Seccomp:\t2", lines);
    }

    [Fact]
    public async Task Run_RootWorker_AgentIsNotRootOnTheHost()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        var marker = Random.Shared.Next(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var run = _sandbox.Prepare(Request());
        var agent = _runner.RunAsync(
            new ProcessSpec(["sleep", marker], run.WorkspacePath, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, TimeSpan.FromSeconds(30), 4096),
            _ => ValueTask.CompletedTask, CancellationToken.None, run);

        var pid = (await Eventually.UntilAsync(() => Task.FromResult(Processes.WithArgument(marker)), p => p.Any(IsSleep), TimeSpan.FromSeconds(10), "agent running")).First(IsSleep);
        var uids = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1..];
        run.KillAll();
        await agent;

        Assert.All(uids, uid => Assert.Equal("65534", uid));
        Assert.Equal(65534, OwnerOf(_dir.Combine("repo")));

        static bool IsSleep(int pid) => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep";
    }

    [Fact]
    public void Prepare_RootWorker_DoesNotChownThroughCommittedSymlinks()
    {
        var victim = _dir.Combine("victim");
        Directory.CreateDirectory(Path.Combine(victim, "sub"));
        File.WriteAllText(Path.Combine(victim, "sub", "file"), "host");
        Directory.CreateSymbolicLink(_dir.Combine("repo", "evil"), victim);

        using (_sandbox.Prepare(Request()))
        {
            Assert.Equal(65534, OwnerOf(_dir.Combine("repo")));
            Assert.Equal(0, OwnerOf(Path.Combine(victim, "sub")));
            Assert.Equal(0, OwnerOf(Path.Combine(victim, "sub", "file")));
        }
    }

    [Fact]
    public async Task Run_HostSysctls_AreNotWritable()
    {
        // Writes the current value back, so even a broken sandbox leaves the host as it was.
        var (_, lines, _) = await RunAsync("(cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern) 2>/dev/null && echo WROTE; echo done");

        Assert.Equal(["done"], lines);
    }

    [Fact]
    public async Task Run_Etc_HoldsOnlyTheStubsAndWhatProgramsNeed_ReadOnly()
    {
        const string Script = "ls -A /etc | tr '\\n' ' '; echo; grep -c . /etc/passwd; head -c 4 /etc/ld.so.cache | od -An -c | tr -d ' '; " +
            "test -s /etc/ssl/certs/ca-certificates.crt && echo certs; test -s /etc/resolv.conf && echo resolver; " +
            "(echo x > /etc/passwd) 2>/dev/null && echo WROTE; (echo x > /etc/new) 2>/dev/null && echo CREATED; echo done";
        var (none, noneLines, _) = await RunAsync(Script);
        using var proxy = new EgressProxy(new EgressPolicy([], []), null, new EgressOptions(), new EgressJournal(_ => ValueTask.CompletedTask, _ => { }));
        var (full, fullLines, _) = await RunAsync(Script, Request(NetworkMode.Full) with { Egress = proxy });

        Assert.Equal(0, none.ExitCode);
        // The host's /etc (shadow, the worker's config, ssh keys) is not there; only the stubs, copies and mount points.
        string[] expected =
        [
            "passwd", "group", "hosts", "resolv.conf", "gai.conf", "host.conf",
            .. new[] { "localtime", "nsswitch.conf", "ld.so.cache", "ld.so.conf" }.Where(f => File.Exists($"/etc/{f}")),
            .. new[] { "ssl", "ca-certificates", "alternatives", "ld.so.conf.d", "gitconfig.d" }.Where(d => Directory.Exists($"/etc/{d}")),
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), noneLines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        Assert.Equal("2", noneLines[1]);
        // The linker cache is the host's (a copy: its first bytes name the format).
        Assert.Equal(Encoding.ASCII.GetString(File.ReadAllBytes("/etc/ld.so.cache").AsSpan(0, 4)), noneLines[2]);
        Assert.Equal(["certs", "done"], noneLines[3..]);
        // No network mode has a name server inside, full neither: the egress proxy resolves names.
        Assert.Equal(0, full.ExitCode);
        Assert.Equal(["certs", "done"], fullLines[3..]);
        Assert.DoesNotContain("WROTE", fullLines);
        Assert.DoesNotContain("CREATED", fullLines);
    }

    private static int OwnerOf(string path)
    {
        // stat -c %u: .NET has no managed way to read a file's owner.
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        return int.Parse(stat.StandardOutput.ReadToEnd().Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Run_OnlyTheWorkspaceIsWritable()
    {
        var marker = $"aw-escape-{Guid.NewGuid():N}";
        var (_, lines, _) = await RunAsync(
            $"echo in > /workspace/inside && echo wrote-workspace; for p in /usr/{marker} /etc/{marker} /{marker} /workspace/../{marker} /proc/self/root/{marker}; do echo x > $p 2>/dev/null && echo ESCAPED $p; done; true");

        Assert.Contains("wrote-workspace", lines);
        Assert.Equal("in\n", File.ReadAllText(_dir.Combine("repo", "inside")));
        Assert.DoesNotContain(lines, l => l.StartsWith("ESCAPED", StringComparison.Ordinal));
        Assert.False(File.Exists($"/{marker}") || File.Exists($"/etc/{marker}") || File.Exists($"/usr/{marker}"));
    }

    [Fact]
    public async Task Run_SeccompAndNamespaces_DenyNestedSandboxesAndMounts()
    {
        var (_, lines, _) = await RunAsync("unshare -r true 2>/dev/null && echo USERNS; unshare -n true 2>/dev/null && echo NETNS; mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED; echo done");

        Assert.Equal(["done"], lines);
    }

    [Fact]
    public async Task Run_PidsLimit_StopsAForkBomb()
    {
        // Without the limit all 100 start and the loop completes; with it, fork fails and the shell gives up.
        var (_, lines, _) = await RunAsync(
            "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo completed $i",
            Request(limits: new SandboxLimits { Pids = 32 }));

        Assert.DoesNotContain(lines, l => l.StartsWith("completed", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("fork", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Run_Timeout_KillsTheWholeGroupIncludingSetsidDaemons()
    {
        var marker = Random.Shared.Next(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (outcome, _, _) = await RunAsync($"setsid sh -c 'exec sleep {marker}' & sleep {marker}", timeout: TimeSpan.FromSeconds(1));

        Assert.Equal(ProcessEnd.TimedOut, outcome.End);
        Assert.Empty(Processes.WithArgument(marker));
    }

    [Fact]
    public async Task Run_ReadOnlyExtraUnderTmp_IsVisibleAboveThePrivateTmp()
    {
        // The worker's own binaries may live under /tmp (a CI clone); the private /tmp must not hide them.
        var bin = _dir.Combine("bin");
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "tool.sh"), "#!/bin/sh\necho tool-ran\n");
        File.SetUnixFileMode(Path.Combine(bin, "tool.sh"), UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var sandbox = new BubblewrapSandbox(new SandboxOptions { StateDir = _dir.Combine("state") }, Cgroups.Detect(), [bin], []);
        var lines = new ConcurrentQueue<string>();
        using var run = sandbox.Prepare(Request());

        await _runner.RunAsync(
            new ProcessSpec([Path.Combine(bin, "tool.sh")], run.WorkspacePath, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, TimeSpan.FromSeconds(30), 4096),
            line =>
            {
                lines.Enqueue(line.Text);
                return ValueTask.CompletedTask;
            },
            CancellationToken.None, run);

        Assert.Contains("tool-ran", lines);
    }

    [Fact]
    public async Task Run_ReportsPeakMemoryAndCpu()
    {
        var (_, _, usage) = await RunAsync("head -c 50000000 /dev/zero | tail -c 1 > /dev/null");

        Assert.NotNull(usage);
        Assert.True(usage.PeakMemoryBytes > 0);
        Assert.True(usage.CpuSeconds > 0);
        Assert.False(usage.OutOfMemoryKilled);
    }

    [Fact]
    public async Task Run_NetworkNone_HasOnlyLoopbackAndNoRoutes()
    {
        var (_, lines, _) = await RunAsync("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo routes $(tail -n +2 /proc/net/route | wc -l)");

        Assert.Equal(["lo", "routes 0"], lines);
    }

    [Fact]
    public void Prepare_McpOnly_HandsTheAgentTheJobsMcpUrl()
    {
        using var run = _sandbox.Prepare(Request(NetworkMode.McpOnly, "http://127.0.0.1:4567/mcp"));

        Assert.Equal("http://127.0.0.1:4567/mcp", run.McpUrl("http://127.0.0.1:4567/mcp"));
    }

    /// <summary>A root worker builds the namespace with the MCP port in it: the agent reaches that port and sees only lo.</summary>
    [Fact]
    public async Task Run_McpOnly_RootWorker_ReachesTheMcpPortInItsOwnNamespace()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        using var mcp = new TcpListener(IPAddress.Loopback, 0);
        mcp.Start();
        var port = ((IPEndPoint)mcp.LocalEndpoint).Port;
        var served = ServeOnceAsync(mcp, "pong");

        var (outcome, lines, _) = await RunAsync(
            $"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port})); s.sendall(b'ping'); print('reply', s.recv(16).decode())\"",
            Request(NetworkMode.McpOnly, $"http://127.0.0.1:{port}/mcp"));

        Assert.Equal(0, outcome.ExitCode);
        Assert.Equal(["lo", "reply pong"], lines);
        Assert.Equal("ping", await served);
    }

    /// <summary>A worker that is not root: bubblewrap makes the namespace, and each port is relayed over a unix socket (both halves here).</summary>
    [Fact]
    public async Task RunNetwork_Relay_ForwardsTheMcpPortOverItsUnixSocket()
    {
        using var mcp = new TcpListener(IPAddress.Loopback, 0);
        mcp.Start();
        var mcpPort = ((IPEndPoint)mcp.LocalEndpoint).Port;
        using var network = RunNetwork.Start(Request(NetworkMode.McpOnly, $"http://127.0.0.1:{mcpPort}/mcp"), ownNamespace: false)!;
        Assert.Null(network.Namespace);
        Assert.Equal(["--bind", network.HostSocket(mcpPort), $"/run/agent-worker/{mcpPort}.sock"], network.BubblewrapArguments());
        var insidePort = FreePort();
        using var stop = new CancellationTokenSource();
        var listening = new TaskCompletionSource();
        var relay = RunNetwork.RelayInsideAsync([(insidePort, network.HostSocket(mcpPort))], listening, stop.Token);
        await listening.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var served = ServeOnceAsync(mcp, "pong");

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, insidePort);
        await client.SendAsync(Encoding.ASCII.GetBytes("ping"));
        var buffer = new byte[16];
        var read = await client.ReceiveAsync(buffer);

        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, read));
        Assert.Equal("ping", await served);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => relay);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static async Task<string> ServeOnceAsync(TcpListener listener, string answer)
    {
        using var connection = await listener.AcceptTcpClientAsync();
        var stream = connection.GetStream();
        var buffer = new byte[16];
        var read = await stream.ReadAsync(buffer);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(answer));
        return Encoding.ASCII.GetString(buffer, 0, read);
    }

    public void Dispose() => _dir.Dispose();
}
