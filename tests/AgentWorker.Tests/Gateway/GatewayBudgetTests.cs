using System.Text.Json.Nodes;
using AgentWorker.Testing;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// Issue 17, acceptance 4: a job whose budget its agent's first answer already spends ends <c>failed</c> /
/// <c>budget_exceeded</c> after the first request past it: that request gets 429 in the vendor's error format naming the
/// budget, it and every later one never reach the vendor, and the job is not retried although it could be.
/// </summary>
public sealed class GatewayBudgetTests(GatewayWorkerFixture fixture) : IClassFixture<GatewayWorkerFixture>
{
    [Theory]
    [InlineData("codex", "maxTokens", "50")]
    [InlineData("codex", "maxCostUsd", "0.0001")]
    [InlineData("claude-code", "maxRequests", "1")]
    public async Task ABudgetSpent_RefusesTheNextRequest_AndFailsTheJobWithoutARetry(string agent, string budget, string limit)
    {
        // 120 tokens, USD 0.00045 at gpt-4o's price: past each budget after the first answer.
        fixture.Vendor.Answer = _ => new ModelReply { Model = agent == "codex" ? "gpt-4o" : "claude-sonnet-4", InputTokens = 100, OutputTokens = 20 };
        var before = fixture.Vendor.Requests.Count;

        var run = await fixture.RunAsync(agent, "Fix it tries=3", new JsonObject { ["maxAttempts"] = 3, ["budget"] = new JsonObject { [budget] = JsonNode.Parse(limit) } });

        Assert.True(run.State == "failed", run.Report() + "\n" + SandboxWorkerFixture.Tail(fixture.Worker.Output));
        Assert.StartsWith("budget_exceeded: ", run.Job.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, run.Job.GetProperty("attempts").GetInt32());
        Assert.Single(fixture.Vendor.Requests.Skip(before));
        // The agent's first call went through; its second was refused by the gateway, in its vendor's format, naming the budget.
        Assert.Equal(("200", "429"), (run.Value("status 1:"), run.Value("status 2:")));
        var refusal = JsonNode.Parse(run.Value("answer 2:")!)!;
        // OpenAI: {"error": {"message": …}}; Anthropic: {"type": "error", "error": {"type": …, "message": …}}.
        var message = refusal["error"]!["message"]!.GetValue<string>();
        if (agent == "claude-code")
            Assert.Equal("error", refusal["type"]!.GetValue<string>());
        Assert.StartsWith("agent-worker gateway: ", message, StringComparison.Ordinal);
        Assert.Contains(budget, message, StringComparison.Ordinal);
        // The agent tried a third time, refused the same way: three tries, one request at the vendor.
        Assert.Equal("429", run.Value("status 3:"));

        var usage = run.Usage()!.Value;
        Assert.Equal((1, 100L, 20L, budget), (usage.GetProperty("requests").GetInt32(), usage.GetProperty("inputTokens").GetInt64(), usage.GetProperty("outputTokens").GetInt64(), usage.GetProperty("budgetExceeded").GetString()));
    }

    /// <summary>The CLI's budget flags set the job's budget as the JSON field does.</summary>
    [Fact]
    public async Task EnqueuedWithTheCli_MaxTokens_FailsTheJobTheSameWay()
    {
        fixture.Vendor.Answer = _ => new ModelReply { Model = "gpt-4o", InputTokens = 100, OutputTokens = 20 };
        var before = fixture.Vendor.Requests.Count;
        var id = $"cli-budget-{Guid.NewGuid():N}"[..24];

        await fixture.CliAsync("enqueue", "--job-id", id, "--agent", "codex", "--repo-url", fixture.RepoPath, "--prompt", "Fix it tries=2", "--max-attempts", "3", "--max-tokens", "119");
        var run = await fixture.WaitAsync(id);

        Assert.True(run.State == "failed", run.Report());
        Assert.StartsWith("budget_exceeded: ", run.Job.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(("200", "429"), (run.Value("status 1:"), run.Value("status 2:")));
        Assert.Single(fixture.Vendor.Requests.Skip(before));
        Assert.Equal("maxTokens", run.Usage()!.Value.GetProperty("budgetExceeded").GetString());
    }
}
