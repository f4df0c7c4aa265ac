using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

public sealed class PriceTableTests
{
    private static readonly PriceTable Prices = PriceTable.Parse("""
        {
          "gpt-4o": { "input": 2.5, "output": 10, "cachedInput": 1.25 },
          "gpt-4o-mini": { "input": 0.15, "output": 0.6, "cachedInput": 0.075 },
          "claude-sonnet-4": { "input": 3, "output": 15 },
          "deepseek": { "input": 0.27, "output": 1.1, "cachedInput": null }
        }
        """);

    [Theory]
    [InlineData("gpt-4o", 2.5)]
    [InlineData("gpt-4o-2024-08-06", 2.5)]
    [InlineData("gpt-4o-mini", 0.15)]
    [InlineData("gpt-4o-mini-2024-07-18", 0.15)]
    [InlineData("claude-sonnet-4-20250514", 3)]
    public void Find_ExactElseLongestPrefixBeforeADash(string model, double input) =>
        Assert.Equal((decimal)input, Prices.Find(model)?.Input);

    [Theory]
    [InlineData("mystery-1")]
    [InlineData("gpt-4omni")]
    [InlineData("gpt")]
    [InlineData("GPT-4o")]
    [InlineData("openai/gpt-4o")]
    [InlineData("")]
    public void Find_Unknown_Null(string model) => Assert.Null(Prices.Find(model));

    [Fact]
    public void Find_ExactBeatsAShorterPrefix()
    {
        var prices = PriceTable.Parse("""{"o1": {"input": 15, "output": 60}, "o1-mini": {"input": 1.1, "output": 4.4}}""");
        Assert.Equal(1.1m, prices.Find("o1-mini")?.Input);
        Assert.Equal(15m, prices.Find("o1-2024-12-17")?.Input);
    }

    [Fact]
    public void Cost_CachedInputAtItsOwnPrice() =>
        // 600 uncached * 2.5 + 400 cached * 1.25 + 200 output * 10, per million.
        Assert.Equal(0.004m, Prices.Cost("gpt-4o-2024-08-06", new TokenUsage(1000, 200, 400)));

    [Theory]
    [InlineData("claude-sonnet-4-20250514")]
    [InlineData("deepseek-chat")]
    public void Cost_WithoutCachedInput_CachedAtFullInputPrice(string model)
    {
        var price = Prices.Find(model)!;
        Assert.Null(price.CachedInput);
        Assert.Equal((1000 * price.Input + 200 * price.Output) / 1_000_000m, Prices.Cost(model, new TokenUsage(1000, 200, 400)));
    }

    [Fact]
    public void Cost_KnownFigure_WithoutCachedInput() =>
        // 1000 input * 3 + 200 output * 15, per million.
        Assert.Equal(0.006m, Prices.Cost("claude-sonnet-4", new TokenUsage(1000, 200, 400)));

    [Fact]
    public void Cost_Unpriced_Null() => Assert.Null(Prices.Cost("mystery-1", new TokenUsage(1000, 200, 0)));

    [Fact]
    public void Cost_MoreCachedThanInput_NeverBelowAllCached() =>
        Assert.Equal(1000 * 1.25m / 1_000_000m, Prices.Cost("gpt-4o", new TokenUsage(1000, 0, 5000)));

    [Fact]
    public void Parse_Blank_Empty()
    {
        Assert.Null(PriceTable.Parse("  ").Find("gpt-4o"));
        Assert.Null(PriceTable.Empty.Find("gpt-4o"));
    }

    [Theory]
    [InlineData("""{"gpt-4o": {"input": 2.5, "output": -1}}""", "MODEL_PRICES: gpt-4o.output: must be a number of USD per million tokens, 0 or more")]
    [InlineData("""{"gpt-4o": {"input": "2.5", "output": 10}}""", "MODEL_PRICES: gpt-4o.input: must be a number")]
    [InlineData("""{"gpt-4o": {"input": 1e7, "output": 10}}""", "MODEL_PRICES: gpt-4o.input: must be a number")]
    [InlineData("""{"gpt-4o": {"input": null, "output": 10}}""", "MODEL_PRICES: gpt-4o.input: must be a number")]
    [InlineData("""{"gpt-4o": {"input": 2.5, "output": 10, "cachedInput": -0.5}}""", "MODEL_PRICES: gpt-4o.cachedInput: must be a number")]
    [InlineData("""{"gpt-4o": {"input": 2.5, "output": 10, "cachedInput": true}}""", "MODEL_PRICES: gpt-4o.cachedInput: must be a number")]
    [InlineData("""{"gpt-4o": {"output": 10}}""", "MODEL_PRICES: gpt-4o.input: missing")]
    [InlineData("""{"ok": {"input": 1, "output": 1}, "gpt-4o": {"input": 2.5}}""", "MODEL_PRICES: gpt-4o.output: missing")]
    [InlineData("""{"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1}}""", "MODEL_PRICES: gpt-4o.cached_input: unknown field")]
    [InlineData("""{"gpt-4o": {"input": 2.5, "input": 3, "output": 10}}""", "MODEL_PRICES: gpt-4o.input: listed twice")]
    [InlineData("""{"gpt-4o": 2.5}""", "MODEL_PRICES: gpt-4o: must be an object")]
    [InlineData("""{"gpt-4o": {"input": 1, "output": 1}, "gpt-4o": {"input": 2, "output": 2}}""", "MODEL_PRICES: gpt-4o: listed twice")]
    [InlineData("""{"": {"input": 1, "output": 1}}""", "MODEL_PRICES: a model name is empty")]
    [InlineData("""[{"gpt-4o": {"input": 1, "output": 1}}]""", "MODEL_PRICES: must be a JSON object")]
    [InlineData("""{"gpt-4o": {"input": 1, "output": 1}""", "MODEL_PRICES: not valid JSON")]
    public void Parse_Bad_FormatExceptionNamingModelAndField(string json, string expected) =>
        Assert.StartsWith(expected, Assert.Throws<FormatException>(() => PriceTable.Parse(json)).Message, StringComparison.Ordinal);
}
