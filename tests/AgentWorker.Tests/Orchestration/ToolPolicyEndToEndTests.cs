using System.Text;
using AgentWorker.Orchestration.Protocol;
using static AgentWorker.Tests.Orchestration.OrchestratorFixture;

namespace AgentWorker.Tests.Orchestration;

/// <summary>
/// Acceptance 3 through the real link: paths leaving the workspace and URLs that are not plain http(s) to an
/// allowed address are denied before anything runs, the servers behind refused URLs never see a connection, and
/// a tool over its memory or pids limit fails cleanly while the worker goes on.
/// </summary>
[Collection(OrchestratorCollection.Name)]
public sealed class ToolPolicyEndToEndTests(OrchestratorFixture fixture)
{
    private Task<TaskRun> RunAsync(ToolCall call, string workspace = Workspace, string worker = MainWorker) =>
        fixture.Orchestrator.RunAsync(Tasks.Tool(workspace, call), worker);

    private async Task AssertDeniedAsync(ToolCall call, string because, string workspace = Workspace)
    {
        var run = await RunAsync(call, workspace);
        Assert.True(run.Result.State == TaskState.Denied, $"{run}\n{fixture.Logs()}");
        Assert.Equal(ErrorCode.PolicyDenied, run.Result.Code);
        Assert.Contains(because, run.Result.Error, StringComparison.Ordinal);
        // Denied means nothing ran: no output, not even a RUNNING tool's.
        Assert.Empty(run.Stdout);
    }

    [Theory]
    [InlineData("../outside.txt", "'..' is not allowed")]
    [InlineData("sub/../../etc/passwd", "'..' is not allowed")]
    [InlineData("/etc/passwd", "outside the workspace")]
    [InlineData("out-abs/passwd", "symlink 'out-abs' -> '/etc'")]
    [InlineData("out-file", "symlink 'out-file' -> '/etc/hostname'")]
    [InlineData("sub/out-rel/etc/passwd", "leads out of the workspace through a symlink")]
    [InlineData("a.txt\0.png", "NUL byte")]
    public async Task FileRead_PathLeavingTheWorkspace_IsDenied(string path, string because) =>
        await AssertDeniedAsync(Tasks.Read(path), because);

    [Fact]
    public async Task FileWrite_ThroughASymlinkOut_IsDeniedAndWritesNothing()
    {
        var target = $"/etc/aw-{fixture.Nonce}";

        await AssertDeniedAsync(Tasks.Write($"out-abs/aw-{fixture.Nonce}", Encoding.UTF8.GetBytes("x")), "symlink 'out-abs'");

        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task Grep_AbsolutePathOutside_IsDenied() =>
        await AssertDeniedAsync(Tasks.Grep("root", "/etc"), "outside the workspace");

    [Fact]
    public async Task Workspace_NameWithSlashes_IsDenied() =>
        await AssertDeniedAsync(Tasks.List(), "not a workspace name", workspace: "../ws");

    [Fact]
    public async Task FetchUrl_FileScheme_IsDenied() =>
        await AssertDeniedAsync(Tasks.Fetch("file:///etc/passwd"), "scheme 'file' is not allowed", workspace: "");

    [Fact]
    public async Task FetchUrl_LoopbackNotAllowed_IsDeniedWithoutAConnection()
    {
        await AssertDeniedAsync(Tasks.Fetch($"http://127.0.0.1:{fixture.Forbidden.Port}/"), "127.0.0.1 is a loopback address", workspace: "");

        Assert.Equal(0, fixture.Forbidden.Connections);
    }

    [Fact]
    public async Task FetchUrl_Ipv6Loopback_IsDenied() =>
        await AssertDeniedAsync(Tasks.Fetch($"http://[::1]:{fixture.Forbidden.Port}/"), "::1 is a loopback address", workspace: "");

    [Fact]
    public async Task FetchUrl_LocalhostName_IsDeniedByName() =>
        await AssertDeniedAsync(Tasks.Fetch($"http://localhost:{fixture.Forbidden.Port}/"), "'localhost' names this machine", workspace: "");

    [Fact]
    public async Task FetchUrl_RedirectFromAllowedServerToLoopback_IsDeniedBeforeFollowing()
    {
        await AssertDeniedAsync(Tasks.Fetch($"http://127.0.0.1:{fixture.RedirectToForbidden.Port}/start"), $"redirect to http://127.0.0.1:{fixture.Forbidden.Port}/secret refused", workspace: "");

        Assert.Single(fixture.RedirectToForbidden.RequestLines);
        Assert.Equal(0, fixture.Forbidden.Connections);
    }

    [Fact]
    public async Task FetchUrl_RedirectToIpv6Loopback_IsDenied() =>
        await AssertDeniedAsync(Tasks.Fetch($"http://127.0.0.1:{fixture.RedirectToV6.Port}/"), "::1 is a loopback address", workspace: "");

    [Fact]
    public async Task FetchUrl_RedirectToFileScheme_IsDenied() =>
        await AssertDeniedAsync(Tasks.Fetch($"http://127.0.0.1:{fixture.RedirectToFile.Port}/"), "scheme 'file' is not allowed", workspace: "");

    [Fact]
    public async Task Grep_OverItsMemoryLimit_FailsCleanlyAndTheWorkerGoesOn()
    {
        var run = await RunAsync(Tasks.Grep("zzz", "long-line.txt"), workspace: "big", worker: LimitedWorker);

        Assert.True(run.Result.State == TaskState.Failed, $"{run}\n{fixture.Logs()}");
        Assert.Equal(ErrorCode.LimitExceeded, run.Result.Code);
        Assert.Contains($"memory limit of {GrepMemoryMb} MiB", run.Result.Error, StringComparison.Ordinal);
        Assert.True(run.Result.Usage.OutOfMemory);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task List_OverItsPidsLimit_FailsCleanlyAndTheWorkerGoesOn()
    {
        var run = await RunAsync(Tasks.List(), worker: LimitedWorker);

        Assert.True(run.Result.State == TaskState.Failed, $"{run}\n{fixture.Logs()}");
        Assert.Equal(ErrorCode.LimitExceeded, run.Result.Code);
        Assert.Contains($"limit of {ListPids} processes", run.Result.Error, StringComparison.Ordinal);
        await AssertHealthyAsync();
    }

    /// <summary>The limited worker still runs a tool within its limits afterwards.</summary>
    private async Task AssertHealthyAsync()
    {
        var after = await RunAsync(Tasks.Read("a.txt"), worker: LimitedWorker);
        Assert.True(after.Result.State == TaskState.Succeeded, $"{after}\n{fixture.Logs()}");
    }
}
