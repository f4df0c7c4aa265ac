using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// Issue 17, acceptance 3: the usage a job's result records is what the vendor reported, for streamed and whole answers of
/// OpenAI chat completions, OpenAI Responses and Anthropic messages; its cost is the price table's; a model the table does
/// not know is recorded with its tokens, without a cost, and named.
/// </summary>
public sealed class GatewayUsageTests(GatewayWorkerFixture fixture) : IClassFixture<GatewayWorkerFixture>
{
    /// <summary>USD per million tokens, as <see cref="GatewayWorkerFixture.Prices"/> has them: input, output, cached input.</summary>
    private static readonly Dictionary<string, (decimal Input, decimal Output, decimal Cached)> Prices = new()
    {
        ["gpt-4o"] = (2.5m, 10m, 1.25m),
        ["claude-sonnet-4"] = (3m, 15m, 0.3m),
    };

    [Theory]
    [InlineData("codex", "", "gpt-4o-2024-08-06", "gpt-4o")]
    [InlineData("codex", "stream", "gpt-4o-2024-08-06", "gpt-4o")]
    [InlineData("codex", "responses", "gpt-4o", "gpt-4o")]
    [InlineData("codex", "responses stream", "gpt-4o", "gpt-4o")]
    [InlineData("claude-code", "", "claude-sonnet-4-20250514", "claude-sonnet-4")]
    [InlineData("claude-code", "stream", "claude-sonnet-4-20250514", "claude-sonnet-4")]
    public async Task RecordedUsage_IsWhatTheVendorReported_PricedByTheTable(string agent, string words, string model, string priced)
    {
        var reply = new ModelReply { Model = model, InputTokens = 1200, OutputTokens = 345, CachedTokens = 200 };
        fixture.Vendor.Answer = _ => reply;

        var run = await fixture.RunAsync(agent, $"Fix it {words}");

        Assert.True(run.State == "succeeded", run.Report() + "\n" + SandboxWorkerFixture.Tail(fixture.Worker.Output));
        var price = Prices[priced];
        var cost = ((reply.InputTokens - reply.CachedTokens) * price.Input + reply.CachedTokens * price.Cached + reply.OutputTokens * price.Output) / 1_000_000m;
        var usage = run.Usage() ?? throw new Xunit.Sdk.XunitException($"no usage recorded: {run.Report()}");
        AssertTokens(usage, 1, reply, run);
        AssertCost(cost, usage.GetProperty("costUsd"), run);
        Assert.Empty(usage.GetProperty("unpricedModels").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, Kind(usage, "budgetExceeded"));
        var line = Assert.Single(usage.GetProperty("models").EnumerateArray());
        Assert.Equal(model, line.GetProperty("model").GetString());
        AssertTokens(line, 1, reply, run);
        AssertCost(cost, line.GetProperty("costUsd"), run);

        var call = Assert.Single(run.ModelEvents());
        Assert.Equal((agent == "codex" ? "openai" : "anthropic", model, 200), (call.GetProperty("vendor").GetString(), call.GetProperty("model").GetString(), call.GetProperty("status").GetInt32()));
        Assert.Equal((reply.InputTokens, reply.OutputTokens, reply.CachedTokens), (call.GetProperty("inputTokens").GetInt64(), call.GetProperty("outputTokens").GetInt64(), call.GetProperty("cachedTokens").GetInt64()));
        Assert.Equal(words.Contains("stream", StringComparison.Ordinal), call.GetProperty("stream").GetBoolean());
        AssertCost(cost, call.GetProperty("costUsd"), run);
    }

    [Fact]
    public async Task AModelWithoutAPrice_IsRecordedWithItsTokens_AndNoCost()
    {
        var reply = new ModelReply { Model = "mystery-1", InputTokens = 77, OutputTokens = 11 };
        fixture.Vendor.Answer = _ => reply;

        var run = await fixture.RunAsync("codex", "Fix it stream model=mystery-1");

        Assert.True(run.State == "succeeded", run.Report());
        var usage = run.Usage()!.Value;
        AssertTokens(usage, 1, reply, run);
        Assert.Equal(JsonValueKind.Null, Kind(usage, "costUsd"));
        Assert.Equal(["mystery-1"], usage.GetProperty("unpricedModels").EnumerateArray().Select(m => m.GetString()));
        var line = Assert.Single(usage.GetProperty("models").EnumerateArray());
        Assert.Equal(("mystery-1", JsonValueKind.Null), (line.GetProperty("model").GetString(), Kind(line, "costUsd")));
    }

    [Fact]
    public async Task SeveralRequests_AddUp()
    {
        fixture.Vendor.Answer = request => new ModelReply { Model = "gpt-4o", InputTokens = 100 * request.Number, OutputTokens = 7, CachedTokens = 0 };
        var before = fixture.Vendor.Requests.Count;

        var run = await fixture.RunAsync("codex", "Fix it tries=3 stream");

        Assert.True(run.State == "succeeded", run.Report());
        var numbers = fixture.Vendor.Requests.Skip(before).Select(r => (long)r.Number).ToList();
        Assert.Equal(3, numbers.Count);
        var usage = run.Usage()!.Value;
        Assert.Equal((3, numbers.Sum() * 100, 21L), (usage.GetProperty("requests").GetInt32(), usage.GetProperty("inputTokens").GetInt64(), usage.GetProperty("outputTokens").GetInt64()));
        AssertCost((numbers.Sum() * 100 * 2.5m + 21 * 10m) / 1_000_000m, usage.GetProperty("costUsd"), run);
        Assert.Equal(3, run.ModelEvents().Count);
    }

    /// <summary>The same usage reaches the receipt, the final webhook and the Prometheus counters (by agent and model).</summary>
    [Fact]
    public async Task Usage_IsInTheReceiptTheWebhookAndTheMetrics()
    {
        // A model name of this test's own, so the worker's counters hold this job's figures only (priced as claude-sonnet-4).
        const string Model = "claude-sonnet-4-20990101";
        var reply = new ModelReply { Model = Model, InputTokens = 4000, OutputTokens = 500, CachedTokens = 1000 };
        fixture.Vendor.Answer = _ => reply;
        const decimal Cost = (3000 * 3m + 1000 * 0.3m + 500 * 15m) / 1_000_000m;

        var run = await fixture.RunAsync("claude-code", $"Fix it stream model={Model}");

        Assert.True(run.State == "succeeded", run.Report());
        var receipt = await fixture.Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{run.Id}/receipt");
        var inReceipt = receipt.GetProperty("modelUsage");
        AssertTokens(inReceipt, 1, reply, run);
        AssertCost(Cost, inReceipt.GetProperty("costUsd"), run);

        var webhook = await Eventually.UntilAsync(
            () => Task.FromResult(fixture.Webhooks.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement).Where(b => b.ToString().Contains(run.Id, StringComparison.Ordinal))
                .Select(FindUsage).LastOrDefault(u => u is not null)),
            usage => usage is not null, TimeSpan.FromSeconds(30), $"a webhook of {run.Id} with its usage");
        AssertTokens(webhook!.Value, 1, reply, run);

        var metrics = await fixture.Client.GetStringAsync("/metrics");
        var labels = $"agent=\"claude-code\",model=\"{Model}\"";
        Assert.Equal(1m, Metric(metrics, "agent_worker_model_requests_total", labels));
        Assert.Equal(
            (4000m, 500m, 1000m),
            (Metric(metrics, "agent_worker_model_tokens_total", labels + ",kind=\"input\""), Metric(metrics, "agent_worker_model_tokens_total", labels + ",kind=\"output\""),
                Metric(metrics, "agent_worker_model_tokens_total", labels + ",kind=\"cached\"")));
        Assert.True(Math.Abs(Metric(metrics, "agent_worker_model_cost_usd_total", labels) - Cost) < 0.000000001m, metrics);
    }

    /// <summary>The first <c>usage</c> object anywhere in a webhook payload.</summary>
    private static JsonElement? FindUsage(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object when element.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object && usage.TryGetProperty("requests", out _) => usage,
        JsonValueKind.Object => element.EnumerateObject().Select(p => FindUsage(p.Value)).FirstOrDefault(u => u is not null),
        JsonValueKind.Array => element.EnumerateArray().Select(FindUsage).FirstOrDefault(u => u is not null),
        _ => null,
    };

    /// <summary>The value of <c>name{labels}</c> in Prometheus text format.</summary>
    private static decimal Metric(string metrics, string name, string labels)
    {
        var line = metrics.Split('\n').SingleOrDefault(l => l.StartsWith($"{name}{{{labels}}} ", StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"no {name}{{{labels}}} in /metrics:\n{metrics}");
        return decimal.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void AssertTokens(JsonElement usage, int requests, ModelReply reply, AgentRun run) =>
        Assert.True(
            (usage.GetProperty("requests").GetInt32(), usage.GetProperty("inputTokens").GetInt64(), usage.GetProperty("outputTokens").GetInt64(), usage.GetProperty("cachedTokens").GetInt64())
                == (requests, reply.InputTokens, reply.OutputTokens, reply.CachedTokens),
            $"expected {requests} request(s), {reply.InputTokens} in, {reply.OutputTokens} out, {reply.CachedTokens} cached: {run.Report()}");

    private static void AssertCost(decimal expected, JsonElement actual, AgentRun run) =>
        Assert.True(actual.ValueKind == JsonValueKind.Number && Math.Abs(actual.GetDecimal() - expected) < 0.000000001m, $"expected cost {expected}, got {actual}: {run.Report()}");

    private static JsonValueKind Kind(JsonElement element, string name) => element.TryGetProperty(name, out var value) ? value.ValueKind : JsonValueKind.Null;
}
