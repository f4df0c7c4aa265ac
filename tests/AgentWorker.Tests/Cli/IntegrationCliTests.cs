using AgentWorker.Core.Sinks;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Cli;

/// <summary>The CLI's share of the integrations: its state changes reach the webhooks, and `jobs receipt` answers.</summary>
public sealed class IntegrationCliTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-cli-integ");

    private async Task<(int Exit, string Output)> RunAsync(Dictionary<string, string>? environment, params string[] args)
    {
        var env = new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = _dir.Combine("data"), ["WORK_DIR"] = _dir.Combine("work") };
        foreach (var (name, value) in environment ?? [])
            env[name] = value;
        var process = WorkerProcess.Start(env, args);
        await using (process)
            return (await process.WaitForExitAsync(TimeSpan.FromSeconds(120)), process.Output.Trim());
    }

    [Fact]
    public async Task EnqueueAndCancel_AreDeliveredBeforeTheCommandExits()
    {
        using var receiver = WebhookReceiver.Start(n => n == 1 ? 503 : 200);
        var hooks = new Dictionary<string, string>
        {
            ["WEBHOOK_URL"] = receiver.Url.ToString(),
            ["WEBHOOK_SECRET"] = "0123456789abcdef",
            ["SINK_RETRY_BASE_DELAY_SECONDS"] = "0.05",
        };

        Assert.Equal((0, "queued cli-1"), await RunAsync(hooks, "enqueue", "--job-id", "cli-1", "--repo-url", _dir.Combine("repo"), "--agent", "ssot_auditor"));
        Assert.Equal((0, "cancelled cli-1"), await RunAsync(hooks, "jobs", "cancel", "cli-1"));

        Assert.Equal([(503, "job.queued"), (200, "job.queued"), (200, "job.cancelled")], receiver.Requests.Select(r => (r.Status, r.Header(WebhookSink.EventHeader))));
    }

    [Fact]
    public async Task Receipt_UnknownOrNotRunJob_ExitsOneWithOneLine()
    {
        await RunAsync(null, "enqueue", "--job-id", "waiting", "--repo-url", _dir.Combine("repo"), "--agent", "ssot_auditor");

        Assert.Equal((1, "agent-worker: no job with id 'ghost'"), await RunAsync(null, "jobs", "receipt", "ghost"));
        Assert.Equal((1, "agent-worker: job 'waiting' has no receipt: no run of its agent has finished (state queued)"), await RunAsync(null, "jobs", "receipt", "waiting", "--verify"));
    }

    [Theory]
    [InlineData("agent-worker: invalid option --branch: required in apply mode: the branch the changes are pushed to", "--mode", "apply")]
    [InlineData("agent-worker: invalid option --create-branch: only meaningful in apply mode (mode: apply)", "--create-branch")]
    public async Task Enqueue_ApplyOptionMisused_NamesTheFlag(string expected, params string[] flags)
    {
        Assert.Equal((2, expected), await RunAsync(null, ["enqueue", "--repo-url", _dir.Combine("repo"), "--agent", "ssot_auditor", .. flags]));
    }

    [Fact]
    public async Task Enqueue_ApplyOptions_AreStoredOnTheJob()
    {
        await RunAsync(null, "enqueue", "--job-id", "apply-1", "--repo-url", _dir.Combine("repo"), "--agent", "ssot_auditor",
            "--mode", "apply", "--branch", "agent/x", "--create-branch", "--commit-message", "Fix it");

        var (exit, output) = await RunAsync(null, "jobs", "show", "apply-1");

        Assert.Equal(0, exit);
        Assert.Contains("\"mode\": \"apply\"", output, StringComparison.Ordinal);
        Assert.Contains("\"createBranch\": true", output, StringComparison.Ordinal);
        Assert.Contains("\"commitMessage\": \"Fix it\"", output, StringComparison.Ordinal);
    }

    public void Dispose() => _dir.Dispose();
}
