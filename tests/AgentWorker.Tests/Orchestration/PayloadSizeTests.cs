using AgentWorker.Orchestration.Protocol;
using AgentWorker.Tests.EndToEnd;
using Grpc.Core;
using static AgentWorker.Tests.Orchestration.OrchestratorFixture;

namespace AgentWorker.Tests.Orchestration;

/// <summary>Acceptance 4: payloads up to the configured message size pass both ways; a bigger one gets a clear error.</summary>
[Collection(OrchestratorCollection.Name)]
public sealed class PayloadSizeTests(OrchestratorFixture fixture)
{
    [Fact]
    public async Task FileWriteThenRead_JustUnderTheWorkersReceiveLimit_RoundTripsByteForByte()
    {
        // Leaves room for the task's envelope (ids, path); the read comes back in chunks under the 1 MiB send limit.
        var content = new byte[MaxRecvBytes - 4096];
        new Random(11).NextBytes(content);
        var name = $"big-{Guid.NewGuid():N}.bin";

        var write = await fixture.Orchestrator.RunAsync(Tasks.Tool(Workspace, Tasks.Write(name, content)), MainWorker);
        var read = await fixture.Orchestrator.RunAsync(Tasks.Tool(Workspace, Tasks.Read(name)), MainWorker);

        Assert.True(write.Result.State == TaskState.Succeeded, $"{write}\n{fixture.Logs()}");
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(fixture.WorkspaceDir, name)));
        Assert.True(read.Result.State == TaskState.Succeeded, read.ToString());
        Assert.Equal(content, read.Stdout);
        Assert.True(read.Events.Count(e => e.Output is not null) >= 4, "read output came in chunks under the send limit");
        Assert.All(read.Events, e => Assert.True(e.CalculateSize() <= MaxSendBytes));
    }

    [Fact]
    public async Task FileWrite_OverTheWorkersReceiveLimit_IsRefusedNamingTheSetting()
    {
        var content = new byte[MaxRecvBytes + 1];

        var e = await Assert.ThrowsAsync<RpcException>(() => fixture.Orchestrator.RunAsync(Tasks.Tool(Workspace, Tasks.Write("too-big.bin", content)), MainWorker));

        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains($"more than worker {MainWorker} accepts in one message ({MaxRecvBytes} bytes; --max-recv-msg-size", e.Status.Detail, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(fixture.WorkspaceDir, "too-big.bin")));
    }

    [Fact]
    public async Task SendTask_OverTheOrchestratorsReceiveLimit_FailsWithOneLineNamingTheLimits()
    {
        var file = fixture.Dir.Combine($"huge-{Guid.NewGuid():N}.bin");
        await File.WriteAllBytesAsync(file, new byte[17 * 1024 * 1024]);

        var (exit, output) = await CliAsync("--tool", "file_write", "--args", """{"path":"huge.bin"}""", "--content-file", file, "--workspace", Workspace);

        Assert.Equal(1, exit);
        Assert.Contains("max-recv-msg-size", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendTask_List_PrintsTheOutputAndExitsZero()
    {
        var (exit, output) = await CliAsync("--tool", "list", "--args", """{"path":"sub"}""", "--workspace", Workspace, "--worker", MainWorker);

        Assert.True(exit == 0, output);
        Assert.Contains(" b.md", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendTask_DeniedTask_ExitsOneWithTheReason()
    {
        var (exit, output) = await CliAsync("--tool", "file_read", "--args", """{"path":"../x"}""", "--workspace", Workspace, "--worker", MainWorker);

        Assert.Equal(1, exit);
        Assert.Contains("denied (policy_denied): path: '..' is not allowed", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--args", """{"patern":"x"}""", "invalid option --args")]
    [InlineData("--args", "[1]", "invalid option --args: must be a JSON object")]
    [InlineData("--tool", "rm", "invalid option --tool: unknown tool 'rm'")]
    public async Task SendTask_BadFlag_ExitsTwoNamingTheFlag(string flag, string value, string message)
    {
        string[] args = flag == "--tool" ? ["--tool", value] : ["--tool", "grep", flag, value];

        var (exit, output) = await CliAsync(args);

        Assert.Equal(2, exit);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }

    private async Task<(int Exit, string Output)> CliAsync(params string[] args)
    {
        await using var cli = WorkerProcess.Start(new Dictionary<string, string>(), ["orchestrator", "send-task", "--orchestrator-addr", fixture.Orchestrator.Url, .. args]);
        var exit = await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exit, cli.Output);
    }
}
