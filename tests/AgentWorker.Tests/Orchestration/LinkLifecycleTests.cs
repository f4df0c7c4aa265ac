using System.Diagnostics;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Orchestration;

/// <summary>Acceptance 2, the shutdown order, `serve --orchestrator-addr` and log output, each test with its own processes.</summary>
public sealed class LinkLifecycleTests : IDisposable
{
    private static readonly TimeSpan ReconnectInterval = TimeSpan.FromSeconds(2);
    private readonly TempDirectory _dir = new("aw", "/var/tmp");

    private string Socket => _dir.Combine("o.sock");

    private WorkerProcess StartWorker(string name, params string[] extra) =>
        WorkerProcess.Start(new Dictionary<string, string>(),
        [
            "connect", "--orchestrator-addr", $"unix://{Socket}", "--name", name, "--heartbeat-interval", "1s",
            "--data-dir", _dir.Combine("data"), "--work-dir", _dir.Combine("work"), "--tool-workspaces", _dir.Combine("ws"),
            .. extra,
        ]);

    [Fact]
    public async Task OrchestratorKilledAndRestarted_WorkerRegistersAgainWithinTheReconnectInterval()
    {
        var orchestrator = await OrchestratorProcess.StartAsync(Socket);
        await using var worker = StartWorker("phoenix", "--reconnect-interval", "2s");
        try
        {
            var first = await orchestrator.WaitForWorkerAsync("phoenix", worker, TimeSpan.FromSeconds(60));

            orchestrator.Process.KillHard();
            await orchestrator.Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
            await orchestrator.DisposeAsync();
            orchestrator = await OrchestratorProcess.StartAsync(Socket);
            var ready = Stopwatch.StartNew();

            // The worker tries every interval; one more second covers dialing and registering on a busy host.
            var again = await orchestrator.WaitForWorkerAsync("phoenix", worker, ReconnectInterval + TimeSpan.FromSeconds(1));
            Assert.True(ready.Elapsed <= ReconnectInterval + TimeSpan.FromSeconds(1), $"re-registered after {ready.Elapsed.TotalSeconds:0.0}s");
            Assert.NotEqual(first.WorkerId, again.WorkerId);
            Assert.Contains("Orchestrator link TransientFailure", worker.Output, StringComparison.Ordinal);

            // The new registration is a working one: a task goes through.
            Directory.CreateDirectory(_dir.Combine("ws", "w"));
            var run = await orchestrator.RunAsync(Tasks.Tool("w", Tasks.List()), "phoenix");
            Assert.True(run.Result.State == TaskState.Succeeded, $"{run}\n{SandboxWorkerFixture.Tail(worker.Output)}");
        }
        finally
        {
            await orchestrator.DisposeAsync();
        }
    }

    [Fact]
    public async Task NoOrchestrator_ReconnectMaxAttempts3_ExitsNonZeroAfterThreeTries()
    {
        await using var worker = StartWorker("lonely", "--reconnect-max-attempts", "3", "--reconnect-interval", "200ms");

        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        Assert.Contains("gave up reaching the orchestrator at unix://", worker.Output, StringComparison.Ordinal);
        Assert.Contains("after 3 attempt(s) (--reconnect-max-attempts 3)", worker.Output, StringComparison.Ordinal);
        Assert.Contains("attempt 3/3", worker.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("attempt 4/3", worker.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_CancelsTheRunningTaskThenUnregisters()
    {
        await using var orchestrator = await OrchestratorProcess.StartAsync(Socket);
        await using var worker = StartWorker("leaver", "--cancel-grace", "200ms");
        await orchestrator.WaitForWorkerAsync("leaver", worker, TimeSpan.FromSeconds(60));
        var ws = _dir.Combine("ws", "w");
        Directory.CreateDirectory(ws);
        var slow = $"slow-{Guid.NewGuid():N}.txt";
        await File.WriteAllTextAsync(Path.Combine(ws, slow), OrchestratorFixture.SlowGrepInput());
        var task = orchestrator.RunAsync(Tasks.Tool("w", Tasks.Grep(OrchestratorFixture.SlowPattern, slow)), "leaver");
        await Eventually.UntilAsync(() => Processes.WithArgument(slow).Count > 0, TimeSpan.FromSeconds(20), "grep running");

        worker.Terminate();
        var run = await task;
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(run.Result.State == TaskState.Cancelled, $"{run}\n{worker.Output}");
        Assert.Contains("worker shutting down", run.Result.Error, StringComparison.Ordinal);
        Assert.Equal(0, exit);
        Assert.Empty(await orchestrator.WorkersAsync());
        // The order: no new tasks and cancel, then unregister, then the connection closes.
        var log = worker.Output;
        var stopping = log.IndexOf("Stopping: no new tasks", StringComparison.Ordinal);
        var cancelled = log.IndexOf("ended Cancelled", StringComparison.Ordinal);
        var unregistered = log.IndexOf("Unregistered", StringComparison.Ordinal);
        Assert.True(stopping >= 0 && stopping < cancelled && cancelled < unregistered, log);
        Assert.Empty(Processes.WithArgument(slow));
    }

    [Fact]
    public async Task Serve_WithOrchestratorAddr_ServesHttpAndRegistersAsAToolWorker()
    {
        await using var orchestrator = await OrchestratorProcess.StartAsync(Socket);
        var port = WorkerProcess.FreePort();
        await using var worker = WorkerProcess.Start(new Dictionary<string, string>(),
            "serve", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--orchestrator-addr", orchestrator.Url, "--name", "both",
            "--data-dir", _dir.Combine("data"), "--work-dir", _dir.Combine("work"), "--tool-workspaces", _dir.Combine("ws"));
        using var client = WorkerProcess.Client(port, null);

        await worker.WaitReadyAsync(client);
        var registered = await orchestrator.WaitForWorkerAsync("both", worker, TimeSpan.FromSeconds(60));

        Assert.Equal(8 - 1, registered.Capabilities.Tools.Count); // web_search needs a search backend
        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task LogOutput_File_GetsTheLogAndFailureStillExitsNonZero()
    {
        var log = _dir.Combine("worker.log");
        await using var worker = StartWorker("filelog", "--reconnect-max-attempts", "1", "--log-output", log, "--log-format", "text");

        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        var text = await File.ReadAllTextAsync(log);
        Assert.Contains("Orchestrator link Connecting: attempt 1/1", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Orchestrator link", worker.Output, StringComparison.Ordinal);
        Assert.Contains("gave up reaching the orchestrator", worker.Output, StringComparison.Ordinal);
    }

    public void Dispose() => _dir.Dispose();
}
