using AgentWorker.Core.Agents;
using AgentWorker.Core.Gateway;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Agents;

/// <summary>The registry's <c>gateway:</c> (presets and maps) and <c>budget:</c>, and what a bad entry is told.</summary>
public sealed class AgentGatewayTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private AgentDefinition Load(string lines)
    {
        var file = _dir.Combine("agents.yaml");
        File.WriteAllText(file, $"agents:\n  - id: coder\n    command: [coder]\n{lines}");
        return AgentRegistry.Load(file, ["agent-worker"]).Find("coder")!;
    }

    [Fact]
    public void Gateway_PresetsAndMaps_AreRead()
    {
        var agent = Load("""
                gateway:
                  - anthropic
                  - {vendor: openai, baseUrlVariable: OPENAI_API_BASE}
                  - {vendor: local-vllm, baseUrlVariable: VLLM_BASE_URL, upstream: "http://vllm.internal:8000/v1", keyVariable: VLLM_KEY, keyHeader: X-Key, keyFormat: "Token {key}"}
                network: allowlist
            """);

        Assert.Equal(ModelVendor.Presets["anthropic"], agent.Gateway[0]);
        Assert.Equal(ModelVendor.Presets["openai"] with { BaseUrlVariable = "OPENAI_API_BASE" }, agent.Gateway[1]);
        var local = agent.Gateway[2];
        Assert.Equal(("http://vllm.internal:8000/v1", "VLLM_KEY", "X-Key", "Token abc", ModelApi.OpenAI),
            (local.Upstream.AbsoluteUri, local.KeyVariable, local.KeyHeader, local.KeyValue("abc"), local.Api));
        // An allowlist without hosts is fine once the vendor is reached through the gateway.
        Assert.Empty(agent.AllowHosts);
    }

    [Fact]
    public void Budget_IsRead_AndAJobNarrowsIt()
    {
        var agent = Load("    budget: {maxRequests: 50, maxTokens: 200000, maxCostUsd: 2.5}\n");

        Assert.Equal(new ModelBudget(50, 200_000, 2.5m), agent.Budget);
        Assert.Equal(new ModelBudget(50, 1_000, 2.5m), agent.Budget.Narrow(new ModelBudget(null, 1_000, 9m)));
    }

    [Theory]
    [InlineData("    gateway: [mistral]\n", "agents[0].gateway[0]", "not a known vendor")]
    [InlineData("    gateway: [{vendor: Local}]\n", "agents[0].gateway[0].vendor", "lower-case")]
    [InlineData("    gateway: [{vendor: local, upstream: \"http://x\"}]\n", "agents[0].gateway[0].baseUrlVariable", "required")]
    [InlineData("    gateway: [{vendor: local, baseUrlVariable: X_URL}]\n", "agents[0].gateway[0].upstream", "required")]
    [InlineData("    gateway: [{vendor: local, baseUrlVariable: X_URL, upstream: \"ftp://x\"}]\n", "agents[0].gateway[0].upstream", "not an http(s) URL")]
    [InlineData("    gateway: [{vendor: local, baseUrlVariable: X_URL, upstream: \"https://u:p@x\"}]\n", "agents[0].gateway[0].upstream", "without credentials")]
    [InlineData("    gateway: [{vendor: openai, keyFormat: \"Bearer\"}]\n", "agents[0].gateway[0].keyFormat", "{key}")]
    [InlineData("    gateway: [{vendor: openai, api: soap}]\n", "agents[0].gateway[0].api", "openai or anthropic")]
    [InlineData("    gateway: [{vendor: openai, keyHeadr: X}]\n", "agents[0].gateway[0].keyHeadr", "not a vendor field")]
    [InlineData("    gateway: [openai, openai]\n", "agents[0].gateway[1].vendor", "listed twice")]
    [InlineData("    gateway: [openai, {vendor: other, baseUrlVariable: OPENAI_BASE_URL, upstream: \"https://x\"}]\n", "agents[0].gateway[1].baseUrlVariable", "already another vendor's")]
    [InlineData("    budget: {maxTokens: 0}\n", "agents[0].budget.maxTokens", "positive whole number")]
    [InlineData("    budget: {maxRequests: 1.5}\n", "agents[0].budget.maxRequests", "positive whole number")]
    [InlineData("    budget: {maxCostUsd: -1}\n", "agents[0].budget.maxCostUsd", "positive number of US dollars")]
    [InlineData("    budget: {maxDollars: 1}\n", "agents[0].budget.maxDollars", "not a budget field")]
    [InlineData("    network: allowlist\n", "agents[0].allowHosts", "or a gateway")]
    public void BadEntry_IsARegistryErrorNamingTheField(string lines, string field, string message)
    {
        var error = Assert.Throws<AgentRegistryException>(() => Load(lines));

        Assert.Contains($"{field}: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _dir.Dispose();
}
