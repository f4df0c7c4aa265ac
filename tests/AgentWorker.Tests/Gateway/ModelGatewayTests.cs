using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AgentWorker.Testing;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// Issue 17, acceptance 1 and the placeholder half of 2: with only the settings an operator already has, the <c>llm</c> agent
/// and the shipped <c>codex</c> / <c>claude-code</c> entries (fake CLIs that read their base URL variable) complete jobs
/// through the gateway. The vendor gets the real key; the agent gets a per-run placeholder, good for its own run only and
/// only while that run lasts.
/// </summary>
public sealed partial class ModelGatewayTests(GatewayWorkerFixture fixture) : IClassFixture<GatewayWorkerFixture>
{
    private const string Findings = """
        ```json
        {"summary": "one injection", "findings": [
          {"severity": "high", "rule": "eval-injection", "file": "app/handler.py", "line": 2, "message": "eval of request data runs attacker code"}
        ]}
        ```
        """;

    [GeneratedRegex("^awgw-[0-9a-f]{64}$")]
    private static partial Regex Placeholder();

    [Fact]
    public async Task LlmAgent_WithOnlyTheOperatorsSettings_CompletesThroughTheGateway()
    {
        fixture.Vendor.Answer = _ => new ModelReply { Content = Findings, Model = "gpt-4o-2024-08-06", InputTokens = 900, OutputTokens = 60 };
        var before = fixture.Vendor.Requests.Count;

        var run = await fixture.RunAsync("llm", "Look for injection bugs");

        Assert.True(run.State == "succeeded", run.Report() + "\n" + SandboxWorkerFixture.Tail(fixture.Worker.Output));
        var finding = Assert.Single(run.Job.GetProperty("result").GetProperty("findings").EnumerateArray());
        Assert.Equal("eval-injection", finding.GetProperty("rule").GetString());
        // The operator's endpoint got the one request, with the operator's key; the agent's went to the gateway.
        var request = Assert.Single(fixture.Vendor.Requests.Skip(before));
        Assert.Equal(("/v1/chat/completions", GatewayWorkerFixture.LlmName, fixture.OpenRouterKey), (request.Path, request.Host.Split(':')[0], request.Key));
        Assert.Contains("Task: Look for injection bugs", request.Json["messages"]![1]!["content"]!.GetValue<string>(), StringComparison.Ordinal);
        var model = Assert.Single(run.ModelEvents());
        Assert.Equal(("llm", 200, 900), (model.GetProperty("vendor").GetString(), model.GetProperty("status").GetInt32(), model.GetProperty("inputTokens").GetInt64()));
        Assert.Equal(1, run.Usage()!.Value.GetProperty("requests").GetInt32());
        await fixture.AssertNoRealKeyAsync(run);
    }

    [Theory]
    [InlineData("codex", "openai", "")]
    [InlineData("codex", "openai", "stream")]
    [InlineData("claude-code", "anthropic", "")]
    [InlineData("claude-code", "anthropic", "stream")]
    public async Task FakeCli_OfTheShippedEntry_CompletesThroughTheGateway_WithAPlaceholderKey(string agent, string vendor, string stream)
    {
        fixture.Vendor.Answer = _ => new ModelReply { Content = $"answer for {agent}" };
        var before = fixture.Vendor.Requests.Count;

        var run = await fixture.RunAsync(agent, $"Fix the failing test {stream}");

        Assert.True(run.State == "succeeded", run.Report() + "\n" + SandboxWorkerFixture.Tail(fixture.Worker.Output));
        Assert.Equal($"{GatewayWorkerFixture.GatewayUrl}/{vendor}", run.Value("base url:"));
        Assert.Equal("200", run.Value("status 1:"));
        // A whole answer carries the text; a stream ends the vendor's way (its text comes in pieces).
        Assert.Contains(stream == "" ? $"answer for {agent}" : vendor == "openai" ? "data: [DONE]" : "event: message_stop", run.Value("answer 1:"), StringComparison.Ordinal);
        // The agent held a placeholder, not the real key (the reversed copy is what no output mask would touch).
        var placeholder = run.PrintedKey();
        Assert.Matches(Placeholder(), placeholder);
        Assert.Equal(placeholder, run.Value("key:"));
        var (realKey, path) = vendor == "openai" ? (fixture.OpenAiKey, "/v1/chat/completions") : (fixture.AnthropicKey, "/v1/messages");
        var request = Assert.Single(fixture.Vendor.Requests.Skip(before));
        Assert.Equal((path, realKey), (request.Path, request.Key));
        Assert.Equal(stream == "stream", request.Stream);
        // The key travelled in the vendor's own header only: no Authorization for Anthropic, no x-api-key for OpenAI.
        Assert.Null(vendor == "openai" ? request.ApiKey : request.Authorization);
        await fixture.AssertNoRealKeyAsync(run);
    }

    /// <summary>
    /// Job A prints its placeholder and holds. Job B, handed A's placeholder, is refused (401) with it by its own gateway
    /// while its own placeholder works; once A has ended, A's placeholder is refused too. No refused call reaches the vendor.
    /// </summary>
    [Fact]
    public async Task APlaceholder_IsRefusedForAnotherRun_AndAfterItsRunEnded()
    {
        fixture.Vendor.Answer = _ => new ModelReply();
        var before = fixture.Vendor.Requests.Count;
        var a = await fixture.EnqueueAsync("codex", "hold");
        var lines = await Eventually.UntilAsync(
            async () => (await fixture.EventsAsync(a)).Select(e => e.GetProperty("message").GetString() ?? "").ToList(),
            l => l.Contains("HOLDING"), TimeSpan.FromSeconds(60), $"job {a} holds\n{SandboxWorkerFixture.Tail(fixture.Worker.Output)}");
        var placeholderA = new string([.. lines.Single(l => l.StartsWith("key reversed: ", StringComparison.Ordinal))["key reversed: ".Length..].Reverse()]);
        Assert.Matches(Placeholder(), placeholderA);
        Assert.Contains("status 1: 200", lines);

        var whileRunning = await fixture.RunAsync("codex", $"tries=2 key={placeholderA}");

        Assert.NotEqual(placeholderA, whileRunning.PrintedKey());
        AssertRefused(whileRunning);

        using (var cancel = await fixture.Client.PostAsync($"/v1/jobs/{a}/cancel", null))
            Assert.True(cancel.IsSuccessStatusCode, await cancel.Content.ReadAsStringAsync());
        Assert.Equal("cancelled", (await fixture.WaitAsync(a)).State);

        var afterwards = await fixture.RunAsync("codex", $"tries=2 key={placeholderA}");

        AssertRefused(afterwards);
        // A's own call, then B's and C's own: the refused ones never reached the vendor, and each that did carried the real key.
        Assert.Equal(3, fixture.Vendor.Requests.Count - before);
        Assert.All(fixture.Vendor.Requests.Skip(before), r => Assert.Equal(fixture.OpenAiKey, r.Key));
    }

    /// <summary>The first call (another run's placeholder) got 401 in OpenAI's error format; the second (its own) got 200.</summary>
    private static void AssertRefused(AgentRun run)
    {
        Assert.True(run.State == "succeeded", run.Report());
        Assert.Equal(("401", "200"), (run.Value("status 1:"), run.Value("status 2:")));
        var error = JsonNode.Parse(run.Value("answer 1:")!)!["error"]!;
        Assert.StartsWith("agent-worker gateway: ", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
