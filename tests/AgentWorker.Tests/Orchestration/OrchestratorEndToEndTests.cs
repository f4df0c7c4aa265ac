using System.Diagnostics;
using System.Text;
using System.Text.Json;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Testing;
using static AgentWorker.Tests.Orchestration.OrchestratorFixture;

namespace AgentWorker.Tests.Orchestration;

/// <summary>Acceptance 1: over a unix socket, a worker registers, heartbeats, runs every tool and is cancelled with force.</summary>
[Collection(OrchestratorCollection.Name)]
public sealed class OrchestratorEndToEndTests(OrchestratorFixture fixture)
{
    private Task<TaskRun> RunAsync(ToolCall call, string workspace = Workspace, string worker = MainWorker) =>
        fixture.Orchestrator.RunAsync(Tasks.Tool(workspace, call), worker);

    private void AssertSucceeded(TaskRun run) =>
        Assert.True(run.Result.State == TaskState.Succeeded, $"{run}\n{fixture.Logs()}");

    [Fact]
    public async Task Register_WorkerListedWithItsToolsAndLimits_HeartbeatsArrive()
    {
        var worker = (await fixture.Orchestrator.WorkersAsync()).Single(w => w.Name == MainWorker);

        Assert.True(worker.Connected);
        Assert.Equal(
            ["file_read", "file_write", "file_edit", "grep", "find", "list", "fetch_url", "web_search"],
            worker.Capabilities.Tools.Select(t => t.Name));
        var grep = worker.Capabilities.Tools.Single(t => t.Name == "grep").Limits;
        Assert.Equal((0.2, 128L * 1024 * 1024, 20, 60.0, false), (grep.Cpus, grep.MemoryBytes, grep.Pids, grep.Timeout.ToTimeSpan().TotalSeconds, grep.Network));
        Assert.True(worker.Capabilities.Tools.Single(t => t.Name == "fetch_url").Limits.Network);
        Assert.Equal(MaxRecvBytes, worker.Capabilities.MaxRecvMsgSize);
        Assert.Contains("ssot_auditor", worker.Capabilities.Agents);

        // Heartbeats every second: the count grows while we watch.
        var seen = worker.Heartbeats;
        var later = await Eventually.UntilAsync(
            async () => (await fixture.Orchestrator.WorkersAsync()).Single(w => w.Name == MainWorker),
            w => w.Heartbeats >= seen + 2, TimeSpan.FromSeconds(15), "two more heartbeats");
        Assert.True(later.Usage.RssBytes > 0, later.ToString());
        Assert.True(later.LastHeartbeat.ToDateTimeOffset() > worker.RegisteredAt.ToDateTimeOffset());
    }

    [Fact]
    public async Task FileRead_ReturnsTheFileBytes()
    {
        var run = await RunAsync(Tasks.Read("a.txt"));

        AssertSucceeded(run);
        Assert.Equal("alpha\nTODO: first\nomega\n", run.StdoutText);
        Assert.Equal("24", run.Result.Details["bytes"]);
        Assert.Equal("false", run.Result.Details["truncated"]);
    }

    [Fact]
    public async Task FileRead_WithLimit_CutsAndSaysSo()
    {
        var run = await RunAsync(Tasks.Read("a.txt", limit: 5));

        AssertSucceeded(run);
        Assert.Equal("alpha", run.StdoutText);
        Assert.Equal("true", run.Result.Details["truncated"]);
    }

    [Fact]
    public async Task FileRead_LinkInsideWorkspace_IsFollowed()
    {
        var run = await RunAsync(Tasks.Read("in-abs"));

        AssertSucceeded(run);
        Assert.Equal("TODO second\n", run.StdoutText);
    }

    [Fact]
    public async Task FileRead_MissingFile_FailsWithTheToolsError()
    {
        var run = await RunAsync(Tasks.Read("no-such-file.txt"));

        Assert.Equal(TaskState.Failed, run.Result.State);
        Assert.Equal(ErrorCode.ToolFailed, run.Result.Code);
        Assert.Contains("No such file", run.Result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FileWrite_CreatesTheFileAndItsDirectories()
    {
        var name = $"made/{Guid.NewGuid():N}.txt";
        var run = await RunAsync(Tasks.Write(name, Encoding.UTF8.GetBytes("written by a tool\n")));

        AssertSucceeded(run);
        Assert.Equal("written by a tool\n", await File.ReadAllTextAsync(Path.Combine(fixture.WorkspaceDir, name)));
    }

    [Fact]
    public async Task FileEdit_ReplacesTheOneOccurrence()
    {
        var name = $"edit-{Guid.NewGuid():N}.txt";
        await File.WriteAllTextAsync(Path.Combine(fixture.WorkspaceDir, name), "one two three\n");

        var run = await RunAsync(Tasks.Edit(name, "two", "2"));

        AssertSucceeded(run);
        Assert.Equal("1", run.Result.Details["replacements"]);
        Assert.Equal("one 2 three\n", await File.ReadAllTextAsync(Path.Combine(fixture.WorkspaceDir, name)));
    }

    [Fact]
    public async Task FileEdit_AmbiguousOldText_FailsAndLeavesTheFile()
    {
        var run = await RunAsync(Tasks.Edit("twice.txt", "same", "other"));

        Assert.Equal(TaskState.Failed, run.Result.State);
        Assert.Equal(ErrorCode.InvalidArgument, run.Result.Code);
        Assert.Contains("occurs 2 times", run.Result.Error, StringComparison.Ordinal);
        Assert.Equal("same same\n", await File.ReadAllTextAsync(Path.Combine(fixture.WorkspaceDir, "twice.txt")));
    }

    [Fact]
    public async Task Grep_ReturnsMatchingLinesWithFileAndLine()
    {
        var run = await RunAsync(Tasks.Grep("TODO", "a.txt"));

        AssertSucceeded(run);
        Assert.Equal(["a.txt:2:TODO: first"], run.Lines);
    }

    [Fact]
    public async Task Grep_WholeWorkspace_SearchesRecursivelyAndNoMatchIsNotAnError()
    {
        var run = await RunAsync(Tasks.Grep("TODO", "sub"));
        var none = await RunAsync(Tasks.Grep("no-such-text-anywhere", "sub"));

        AssertSucceeded(run);
        Assert.Equal(["sub/b.md:1:TODO second"], run.Lines);
        AssertSucceeded(none);
        Assert.Empty(none.Lines);
    }

    [Fact]
    public async Task Find_ListsMatchingPathsRelativeToTheWorkspace()
    {
        var run = await RunAsync(Tasks.Find("*.md"));

        AssertSucceeded(run);
        Assert.Equal(["sub/b.md"], run.Lines);
    }

    [Fact]
    public async Task List_ShowsTheDirectory()
    {
        var run = await RunAsync(Tasks.List("sub"));

        AssertSucceeded(run);
        Assert.Contains(run.Lines, l => l.EndsWith(" b.md", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.EndsWith(" c.txt", StringComparison.Ordinal));
    }

    /// <summary>Without a sandbox there is no proxy: curl goes straight to the address the policy checked.</summary>
    [Fact]
    public async Task FetchUrl_WithoutSandbox_ReturnsTheBody()
    {
        var run = await RunAsync(Tasks.Fetch($"http://127.0.0.1:{fixture.Page.Port}/unsandboxed"), workspace: "", worker: UnsandboxedWorker);

        AssertSucceeded(run);
        Assert.Equal(PageBody, run.StdoutText);
        Assert.Contains("GET /unsandboxed HTTP/1.1", fixture.Page.RequestLines);
    }

    [Fact]
    public async Task FetchUrl_AllowedLoopbackServer_ReturnsTheBody()
    {
        var url = $"http://127.0.0.1:{fixture.Page.Port}/page";
        var run = await RunAsync(Tasks.Fetch(url), workspace: "");

        AssertSucceeded(run);
        Assert.Equal(PageBody, run.StdoutText);
        Assert.Equal("200", run.Result.Details["http_status"]);
        Assert.Contains("GET /page HTTP/1.1", fixture.Page.RequestLines);
    }

    [Fact]
    public async Task WebSearch_QueriesTheConfiguredBackend()
    {
        var run = await RunAsync(Tasks.Search("agent worker", max: 3), workspace: "");

        AssertSucceeded(run);
        Assert.Contains("AgentWorker", JsonDocument.Parse(run.StdoutText).RootElement.GetProperty("results")[0].GetProperty("title").GetString(), StringComparison.Ordinal);
        Assert.Contains("GET /search?q=agent%20worker&n=3 HTTP/1.1", fixture.Search.RequestLines);
    }

    [Fact]
    public async Task Grep_CancelledWithForce_StopsWithinOneSecond()
    {
        var task = Tasks.Tool(Workspace, Tasks.Grep(SlowPattern, fixture.SlowFile));
        using var call = fixture.Orchestrator.Control.SubmitTask(new SubmitTaskRequest { Task = task, Worker = MainWorker });
        var events = call.ResponseStream;
        Assert.True(await events.MoveNext(CancellationToken.None), fixture.Logs());
        Assert.Equal(TaskState.Running, events.Current.Status?.State);
        // Running is sent just before the process starts: wait until grep itself is there.
        await Eventually.UntilAsync(() => Processes.WithArgument(fixture.SlowFile).Count > 0, TimeSpan.FromSeconds(20), "grep running");

        var clock = Stopwatch.StartNew();
        await fixture.Orchestrator.Control.CancelTaskAsync(new CancelTaskRequest { TaskId = task.TaskId, Reason = "test: force", Force = true });
        TaskResult? result = null;
        while (result is null && await events.MoveNext(CancellationToken.None))
            result = events.Current.Result;
        var stopped = clock.Elapsed;

        Assert.NotNull(result);
        Assert.Equal(TaskState.Cancelled, result.State);
        Assert.Contains("test: force", result.Error, StringComparison.Ordinal);
        Assert.True(stopped < TimeSpan.FromSeconds(1), $"cancel took {stopped.TotalMilliseconds:0} ms");
        Assert.Empty(Processes.WithArgument(fixture.SlowFile));
    }

    [Fact]
    public async Task AgentJob_OverTheLink_RunsThePipelineAndReportsFindings()
    {
        var job = new { agent = "ssot_auditor", repo = new { url = fixture.Repository.Path }, maxAttempts = 1 };
        var run = await fixture.Orchestrator.RunAsync(
            new TaskSpec { TaskId = $"job-{Guid.NewGuid():N}", Agent = new AgentJob { JobJson = JsonSerializer.Serialize(job) } }, MainWorker);

        AssertSucceeded(run);
        Assert.Equal("succeeded", run.Result.Details["job_state"]);
        var result = JsonDocument.Parse(run.Result.Details["result_json"]).RootElement;
        Assert.Contains(result.GetProperty("findings").EnumerateArray(), f => f.GetProperty("file").GetString()?.EndsWith("retry.py", StringComparison.Ordinal) == true);
        Assert.Contains(run.Events, e => e.Progress?.Message.Contains("queued", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task AgentJob_InvalidJob_IsDeniedNamingTheField()
    {
        var run = await fixture.Orchestrator.RunAsync(
            new TaskSpec { TaskId = $"job-{Guid.NewGuid():N}", Agent = new AgentJob { JobJson = """{"agent":"no_such_agent","repo":{"url":"/nowhere"}}""" } }, MainWorker);

        Assert.Equal(TaskState.Denied, run.Result.State);
        Assert.Equal(ErrorCode.InvalidArgument, run.Result.Code);
        Assert.Contains("job_json.agent", run.Result.Error, StringComparison.Ordinal);
    }
}
