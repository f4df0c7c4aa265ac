using AgentWorker.Core.Gateway;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Configuration;

/// <summary>The model gateway's settings: defaults, parsing, and a bad value named at startup.</summary>
public sealed class GatewayConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private GatewayOptions Load(Dictionary<string, string> env)
    {
        env.TryAdd("AGENT_WORKER_DATA", _dir.Combine("data"));
        return WorkerConfigTests.Load(env: env).Gateway;
    }

    [Fact]
    public void Load_Defaults_MatchTheDocumentedOnes()
    {
        var gateway = Load([]);

        Assert.Null(gateway.Prices.Find("gpt-4o"));
        Assert.Equal(32L << 20, gateway.MaxRequestBytes);
        Assert.Equal(64L << 20, gateway.MaxResponseBytes);
        Assert.Equal(TimeSpan.FromMinutes(10), gateway.Timeout);
    }

    [Fact]
    public void Load_Values_AreParsed()
    {
        var gateway = Load(new()
        {
            ["MODEL_PRICES"] = """{"gpt-4o": {"input": 2.5, "output": 10, "cachedInput": 1.25}}""",
            ["GATEWAY_MAX_REQUEST_MB"] = "4",
            ["GATEWAY_MAX_RESPONSE_MB"] = "8",
            ["GATEWAY_TIMEOUT_SECONDS"] = "30",
        });

        Assert.Equal(new ModelPrice(2.5m, 10m, 1.25m), gateway.Prices.Find("gpt-4o-2024-08-06"));
        Assert.Equal((4L << 20, 8L << 20, TimeSpan.FromSeconds(30)), (gateway.MaxRequestBytes, gateway.MaxResponseBytes, gateway.Timeout));
    }

    [Theory]
    [InlineData("MODEL_PRICES", "nope", "not valid JSON")]
    [InlineData("MODEL_PRICES", """{"gpt-4o": {"input": -1, "output": 2}}""", "gpt-4o.input: must be a number of USD per million tokens")]
    [InlineData("MODEL_PRICES", """{"gpt-4o": {"input": 1}}""", "gpt-4o.output")]
    [InlineData("GATEWAY_MAX_REQUEST_MB", "0", "whole number")]
    [InlineData("GATEWAY_MAX_RESPONSE_MB", "lots", "whole number")]
    [InlineData("GATEWAY_TIMEOUT_SECONDS", "0", "whole number from 1 to 86400")]
    public void Load_BadValue_IsAConfigErrorNamingTheSetting(string name, string value, string because)
    {
        var error = Assert.Throws<AgentWorker.Configuration.ConfigException>(() => Load(new() { [name] = value }));

        Assert.Contains($"/ {name} (from environment {name})", error.Message, StringComparison.Ordinal);
        Assert.Contains(because, error.Message, StringComparison.Ordinal);
        // The message names the setting once, not the parser's prefix again.
        Assert.DoesNotContain($"{name}: {name}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VendorKeys_AreSecrets_MaskedInWhatTheWorkerStores()
    {
        var config = WorkerConfigTests.Load(env: new()
        {
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["OPENAI_API_KEY"] = "sk-openai-real-0123",
            ["ANTHROPIC_API_KEY"] = "sk-ant-real-4567",
        });

        Assert.Equal("keys *** and ***", config.Pipeline.Redactor.Redact("keys sk-openai-real-0123 and sk-ant-real-4567"));
    }

    public void Dispose() => _dir.Dispose();
}
