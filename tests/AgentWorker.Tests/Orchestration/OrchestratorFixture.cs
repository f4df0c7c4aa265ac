using System.Globalization;
using System.Text;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Orchestration;

[CollectionDefinition(Name)]
public sealed class OrchestratorCollection : ICollectionFixture<OrchestratorFixture>
{
    public const string Name = "orchestrator";
}

/// <summary>
/// One real reference orchestrator on a unix socket with three real workers attached (`agent-worker connect`):
/// <see cref="MainWorker"/> (default bubblewrap sandbox) with small message limits, loopback web servers allowed by
/// address and port and a loopback search stub; <see cref="LimitedWorker"/> with tiny grep memory and list pids limits;
/// <see cref="UnsandboxedWorker"/> with <c>--sandbox none</c>, where the web tools have no egress proxy.
/// </summary>
public sealed class OrchestratorFixture : IAsyncLifetime
{
    public const string MainWorker = "e2e-main";
    public const string LimitedWorker = "e2e-limited";
    public const string UnsandboxedWorker = "e2e-unsandboxed";
    public const string Workspace = "main";
    public const int MaxRecvBytes = 4 * 1024 * 1024;
    public const int MaxSendBytes = 1024 * 1024;
    public const int GrepMemoryMb = 16;
    public const int ListPids = 2;

    private WorkerProcess? _main;
    private WorkerProcess? _limited;
    private WorkerProcess? _unsandboxed;
    private OrchestratorProcess? _orchestrator;

    /// <summary>Under /var/tmp like the sandbox fixtures (the sandbox's /tmp is private), short for the socket path.</summary>
    public TempDirectory Dir { get; } = new("aw", "/var/tmp");

    public string Nonce { get; } = Guid.NewGuid().ToString("N")[..10];

    public string WorkspaceDir => Dir.Combine("ws", Workspace);

    /// <summary>A file a backreference pattern takes minutes to grep (at the tool's 0.2 CPU); its name finds the grep on the host.</summary>
    public string SlowFile => $"slow-{Nonce}.txt";

    public const string SlowPattern = @"^(.*)(.*)(.*)\3\2\1a$";

    public const string PageBody = "hello from the page";

    internal OrchestratorProcess Orchestrator => _orchestrator ?? throw new InvalidOperationException("not started");
    internal WorkerProcess Main => _main ?? throw new InvalidOperationException("not started");
    internal WorkerProcess Limited => _limited ?? throw new InvalidOperationException("not started");

    internal LoopbackServer Page { get; } = LoopbackServer.Http(PageBody);

    /// <summary>Not in the allow list: a connection here is a policy failure.</summary>
    internal LoopbackServer Forbidden { get; } = LoopbackServer.Http("forbidden content");

    internal LoopbackServer Search { get; } = LoopbackServer.Http("""{"results":[{"title":"AgentWorker","url":"https://example.invalid/aw"}]}""");

    internal LoopbackServer RedirectToForbidden { get; private set; } = null!;
    internal LoopbackServer RedirectToV6 { get; private set; } = null!;
    internal LoopbackServer RedirectToFile { get; private set; } = null!;

    /// <summary>Copied into two places: the duplication ssot_auditor reports.</summary>
    private const string RetryModule = "import time\n\ndef retry(call, attempts):\n    for attempt in range(attempts):\n        try:\n            return call()\n        except OSError:\n            time.sleep(2 ** attempt)\n";

    internal TestRepository Repository { get; } = TestRepository.Create(new Dictionary<string, string>
    {
        ["a/retry.py"] = RetryModule,
        ["b/retry.py"] = RetryModule,
    });

    public async Task InitializeAsync()
    {
        RedirectToForbidden = LoopbackServer.Redirect($"http://127.0.0.1:{Forbidden.Port}/secret");
        RedirectToV6 = LoopbackServer.Redirect($"http://[::1]:{Forbidden.Port}/secret");
        RedirectToFile = LoopbackServer.Redirect("file:///etc/passwd");
        CreateWorkspace();
        _orchestrator = await OrchestratorProcess.StartAsync(Dir.Combine("o.sock"), "--max-recv-msg-size", (16 * 1024 * 1024).ToString(CultureInfo.InvariantCulture));

        var allowed = new[] { Page, Search, RedirectToForbidden, RedirectToV6, RedirectToFile }.Select(s => $"127.0.0.1:{s.Port}");
        _main = StartWorker(MainWorker,
            "--max-recv-msg-size", MaxRecvBytes.ToString(CultureInfo.InvariantCulture),
            "--max-send-msg-size", MaxSendBytes.ToString(CultureInfo.InvariantCulture),
            "--web-allow", string.Join(',', allowed),
            "--web-search-url", $"http://127.0.0.1:{Search.Port}/search?q={{query}}&n={{count}}");

        var config = Dir.Combine("limited.yaml");
        File.WriteAllText(config, $"toolLimits:\n  grep:\n    memoryMb: {GrepMemoryMb}\n  list:\n    pids: {ListPids}\n");
        _limited = StartWorker(LimitedWorker, "--config", config);
        _unsandboxed = StartWorker(UnsandboxedWorker, "--sandbox", "none", "--web-allow", $"127.0.0.1:{Page.Port}");

        await Orchestrator.WaitForWorkerAsync(MainWorker, Main, TimeSpan.FromSeconds(60));
        await Orchestrator.WaitForWorkerAsync(LimitedWorker, Limited, TimeSpan.FromSeconds(60));
        await Orchestrator.WaitForWorkerAsync(UnsandboxedWorker, _unsandboxed, TimeSpan.FromSeconds(60));
    }

    private WorkerProcess StartWorker(string name, params string[] extra) =>
        WorkerProcess.Start(new Dictionary<string, string>(),
        [
            "connect", "--orchestrator-addr", Orchestrator.Url, "--name", name,
            "--heartbeat-interval", "1s", "--reconnect-interval", "1s", "--cancel-grace", "1s",
            "--data-dir", Dir.Combine(name, "data"), "--work-dir", Dir.Combine(name, "work"), "--tool-workspaces", Dir.Combine("ws"),
            .. extra,
        ]);

    private void CreateWorkspace()
    {
        var ws = WorkspaceDir;
        Directory.CreateDirectory(Path.Combine(ws, "sub"));
        File.WriteAllText(Path.Combine(ws, "a.txt"), "alpha\nTODO: first\nomega\n");
        File.WriteAllText(Path.Combine(ws, "sub", "b.md"), "TODO second\n");
        File.WriteAllText(Path.Combine(ws, "sub", "c.txt"), "nothing here\n");
        File.WriteAllText(Path.Combine(ws, "twice.txt"), "same same\n");
        File.CreateSymbolicLink(Path.Combine(ws, "out-abs"), "/etc");
        File.CreateSymbolicLink(Path.Combine(ws, "out-file"), "/etc/hostname");
        File.CreateSymbolicLink(Path.Combine(ws, "sub", "out-rel"), "../../..");
        File.CreateSymbolicLink(Path.Combine(ws, "in-link"), "sub");
        File.CreateSymbolicLink(Path.Combine(ws, "in-abs"), "/workspace/sub/b.md");

        File.WriteAllText(Path.Combine(ws, SlowFile), SlowGrepInput());

        // One 48 MiB line: grep must hold all of it, three times the limited worker's grep memory.
        Directory.CreateDirectory(Dir.Combine("ws", "big"));
        using var big = File.Create(Dir.Combine("ws", "big", "long-line.txt"));
        var chunk = Encoding.ASCII.GetBytes(new string('a', 1024 * 1024));
        for (var i = 0; i < 48; i++)
            big.Write(chunk);
    }

    /// <summary>Random a/b lines: half end in "a", so grep cannot rule them out without the backtracking <see cref="SlowPattern"/> needs.</summary>
    public static string SlowGrepInput()
    {
        var random = new Random(7);
        var slow = new StringBuilder();
        for (var line = 0; line < 2000; line++)
        {
            for (var c = 0; c < 200; c++)
                slow.Append(random.Next(2) == 0 ? 'a' : 'b');
            slow.Append('\n');
        }
        return slow.ToString();
    }

    /// <summary>For assertion messages: the end of both workers' and the orchestrator's logs.</summary>
    internal string Logs() =>
        $"--- main\n{SandboxWorkerFixture.Tail(Main.Output)}\n--- limited\n{SandboxWorkerFixture.Tail(Limited.Output)}\n--- orchestrator\n{SandboxWorkerFixture.Tail(Orchestrator.Process.Output)}";

    public async Task DisposeAsync()
    {
        if (_main is not null)
            await _main.DisposeAsync();
        if (_limited is not null)
            await _limited.DisposeAsync();
        if (_unsandboxed is not null)
            await _unsandboxed.DisposeAsync();
        if (_orchestrator is not null)
            await _orchestrator.DisposeAsync();
        foreach (var server in new[] { Page, Forbidden, Search, RedirectToForbidden, RedirectToV6, RedirectToFile })
        {
            if (server is not null)
                await server.DisposeAsync();
        }
        Repository.Dispose();
        // Tool runs hand the workspace to the sandbox user; removing it needs nothing more as root.
        Dir.Dispose();
    }
}
