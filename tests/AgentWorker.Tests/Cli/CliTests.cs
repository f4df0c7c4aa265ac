using AgentWorker.Tests.EndToEnd;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Cli;

/// <summary>The command line, run as the real binary: exit codes, one-line errors, what each command prints.</summary>
public sealed class CliTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-cli");

    private async Task<(int Exit, string Output)> RunAsync(Dictionary<string, string>? environment, params string[] args)
    {
        var env = new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = _dir.Combine("data"), ["WORK_DIR"] = _dir.Combine("work") };
        foreach (var (name, value) in environment ?? [])
            env[name] = value;
        var process = WorkerProcess.Start(env, args);
        await using (process)
        {
            var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(120));
            return (exit, process.Output);
        }
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("enqueue", "--priority", "high")]
    [InlineData("jobs", "list", "--state", "sleeping")]
    public async Task BadArguments_ExitTwoWithOneLine(params string[] args)
    {
        var (exit, output) = await RunAsync(null, args);

        Assert.Equal(2, exit);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("agent-worker: ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Enqueue_InvalidJob_NamesTheFlag()
    {
        var (exit, output) = await RunAsync(null, "enqueue", "--agent", "ssot_auditor");

        Assert.Equal(2, exit);
        Assert.Equal("agent-worker: invalid option --repo-url: required", output.Trim());
    }

    [Theory]
    [InlineData("--repo-url", "https://ghp_secret123@github.com/o/r.git", "--repo-url: must not embed credentials")]
    [InlineData("--job-id", "..", "--job-id: must be 1-128 characters")]
    [InlineData("--job-id", "-x", "--job-id: must be 1-128 characters")]
    public async Task Enqueue_RefusedValue_OneLineNamingTheFlag_ExitTwo(string flag, string value, string expected)
    {
        string[] args = flag == "--repo-url" ? ["enqueue", "--agent", "ssot_auditor", flag, value] : ["enqueue", "--agent", "ssot_auditor", "--repo-url", _dir.Combine("repo"), $"{flag}={value}"];

        var (exit, output) = await RunAsync(null, args);

        Assert.Equal(2, exit);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"agent-worker: invalid option {expected}", output, StringComparison.Ordinal);
        Assert.DoesNotContain("ghp_secret123", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidPublicUrl_ExitsTwoNamingIt()
    {
        var (exit, output) = await RunAsync(new() { ["PUBLIC_URL"] = "ftp://worker.example" }, "serve");

        Assert.Equal(2, exit);
        Assert.StartsWith("agent-worker: invalid setting --public-url / PUBLIC_URL", output.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidSetting_ExitsTwoNamingIt()
    {
        var (exit, output) = await RunAsync(new() { ["PORT"] = "http" }, "serve");

        Assert.Equal(2, exit);
        Assert.Equal("agent-worker: invalid setting --port / PORT (from environment PORT): 'http' is not a whole number from 0 to 65535", output.Trim());
    }

    [Fact]
    public async Task QueueCommands_EnqueueIdempotentlyAndReport()
    {
        var repo = _dir.Combine("repo");
        Assert.Equal((0, "queued job-123"), await Trimmed(RunAsync(null, "enqueue", "--job-id", "job-123", "--repo-url", repo, "--agent", "ssot_auditor", "--branch", "feature-branch", "--prompt", "Implement X")));
        Assert.Equal((0, "exists job-123 (queued)"), await Trimmed(RunAsync(null, "enqueue", "--job-id", "job-123", "--repo-url", repo, "--agent", "ssot_auditor")));

        var (_, stats) = await RunAsync(null, "stats");
        var (_, peek) = await RunAsync(null, "peek");
        var (_, list) = await RunAsync(null, "jobs", "list", "--repo", "/repo");
        var (_, otherRepo) = await RunAsync(null, "jobs", "list", "--repo", "/elsewhere");
        var (cancelExit, cancel) = await RunAsync(null, "jobs", "cancel", "job-123");
        var (retryExit, retry) = await RunAsync(null, "jobs", "retry", "job-123");
        var (missingExit, missing) = await RunAsync(null, "jobs", "show", "ghost");
        var (_, recover) = await RunAsync(null, "recover");

        Assert.Contains("\"queued\": 1", stats, StringComparison.Ordinal);
        Assert.Contains("\"id\": \"job-123\"", peek, StringComparison.Ordinal);
        Assert.Contains("\"branch\": \"feature-branch\"", peek, StringComparison.Ordinal);
        Assert.Contains("job-123  queued  ssot_auditor", list, StringComparison.Ordinal);
        Assert.Equal("0 of 0", otherRepo.Trim().Split('\n')[^1]);
        Assert.Equal((0, "cancelled job-123"), (cancelExit, cancel.Trim()));
        Assert.Equal((0, "queued job-123 again"), (retryExit, retry.Trim()));
        Assert.Equal((1, "agent-worker: no job with id 'ghost'"), (missingExit, missing.Trim()));
        Assert.Equal("recovered 0 job(s)", recover.Trim());
    }

    [Fact]
    public async Task ConfigShow_RedactsSecretsAndNamesOrigins()
    {
        var (exit, output) = await RunAsync(new() { ["WORKER_API_KEY"] = "super-secret-value-1", ["PORT"] = "4555" }, "config", "show", "--workers", "4");

        Assert.Equal(0, exit);
        Assert.DoesNotContain("super-secret-value-1", output, StringComparison.Ordinal);
        Assert.Matches(@"apiKey\s+--api-key\s+WORKER_API_KEY\s+\*\*\*\s+WORKER_API_KEY", output);
        Assert.Matches(@"port\s+--port\s+PORT\s+4555\s+PORT", output);
        Assert.Matches(@"workers\s+--workers\s+WORKERS\s+4\s+--workers", output);
        Assert.Matches(@"leaseSeconds\s+--lease-seconds\s+LEASE_SECONDS\s+30\s+default", output);
    }

    [Fact]
    public async Task SandboxCheck_ProbesARealSandbox()
    {
        var (exit, output) = await RunAsync(null, "sandbox", "check");

        Assert.True(exit == 0, output);
        Assert.Matches(@"configured sandbox\s+bwrap", output);
        Assert.Matches(@"bubblewrap\s+bubblewrap \d", output);
        Assert.Matches(@"probe\s+ok\s+uid=65534 CapEff: 0000000000000000 NoNewPrivs: 1 Seccomp: 2", output);
        // The test runs as root, like CI: each attempt's trees are capped tmpfs mounts.
        Assert.Matches(@"disk caps\s+tmpfs per attempt\s+workspace 500 MiB, home 512 MiB, artifacts 100 MiB", output);
    }

    [Fact]
    public async Task SandboxCheck_WorkspaceTmpfsOff_SaysTheLimitsAreCheckedAfterTheRun()
    {
        var (exit, output) = await RunAsync(new() { ["WORKSPACE_TMPFS"] = "off" }, "sandbox", "check");

        Assert.True(exit == 0, output);
        Assert.Matches(@"disk caps\s+after the run\s+WORKSPACE_TMPFS=off", output);
    }

    [Fact]
    public async Task SandboxCheck_WithSandboxNone_SaysAgentsRunUnisolated()
    {
        var (exit, output) = await RunAsync(new() { ["SANDBOX"] = "none" }, "sandbox", "check");

        Assert.Equal(0, exit);
        Assert.Matches(@"configured sandbox\s+none", output);
        Assert.Contains("without isolation", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AgentsList_ShowsTheBuiltIns()
    {
        var (exit, output) = await RunAsync(null, "agents", "list");

        Assert.Equal(0, exit);
        foreach (var agent in new[] { "ssot_auditor", "secret_scanner", "dependency_auditor" })
            Assert.Matches($@"{agent}\s+built-in", output);
        // The llm agent reaches its endpoint only through the model gateway.
        Assert.Matches(@"llm\s+built-in\s+default\s+allowlist\s+llm \(openrouter\.ai\)", output);
    }

    [Fact]
    public async Task Demo_RunsEveryBuiltInAgentAndPrintsFindingsAndScores()
    {
        var (exit, output) = await RunAsync(null, "demo");

        Assert.True(exit == 0, output);
        foreach (var agent in new[] { "ssot_auditor", "secret_scanner", "dependency_auditor" })
            Assert.Matches($@"{agent}\s+succeeded\s+\d+\s+[1-9]\d*", output);
        Assert.Contains("secret_scanner findings:", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Q3EGRZ7WNPLX4TMD", output, StringComparison.Ordinal);
    }

    private static async Task<(int, string)> Trimmed(Task<(int Exit, string Output)> run)
    {
        var (exit, output) = await run;
        return (exit, output.Trim());
    }

    public void Dispose() => _dir.Dispose();
}
