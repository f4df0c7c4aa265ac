using System.Text.Json;

namespace AgentWorker.Core.Gateway;

/// <summary>A model's list price in USD per million tokens; <see cref="CachedInput"/> null means cached input costs full price.</summary>
public sealed record ModelPrice(decimal Input, decimal Output, decimal? CachedInput);

/// <summary>
/// The operator's <c>MODEL_PRICES</c>: what each model costs, so a run's usage has a cost and <c>maxCostUsd</c> can be
/// enforced. A dated or suffixed model name the table does not list falls back to its longest listed base name
/// (<c>gpt-4o-2024-08-06</c> to <c>gpt-4o</c>), since vendors answer with the dated name of the model asked for.
/// </summary>
public sealed class PriceTable
{
    private const string Setting = "MODEL_PRICES";

    /// <summary>Above any real price by orders of magnitude; the ceiling keeps costs of absurd token counts inside <see cref="decimal"/>.</summary>
    private const decimal MaxPrice = 1_000_000m;

    private const string PriceRule = "must be a number of USD per million tokens, 0 or more (at most 1000000)";

    private readonly Dictionary<string, ModelPrice> _prices;
    private readonly Dictionary<string, ModelPrice>.AlternateLookup<ReadOnlySpan<char>> _byPrefix;

    private PriceTable(Dictionary<string, ModelPrice> prices)
    {
        _prices = prices;
        _byPrefix = prices.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public static PriceTable Empty { get; } = new(new Dictionary<string, ModelPrice>(StringComparer.Ordinal));

    /// <summary>
    /// Parses <c>MODEL_PRICES</c> (a JSON object of model to <c>{"input", "output", "cachedInput"?}</c>; blank means no
    /// prices). Anything else throws <see cref="FormatException"/> whose message names the model and field at fault, so
    /// a typo stops the worker at start-up instead of silently pricing a model at nothing.
    /// </summary>
    public static PriceTable Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (string.IsNullOrWhiteSpace(json))
            return Empty;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{Setting}: not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new FormatException($"{Setting}: must be a JSON object of model -> {{\"input\", \"output\", \"cachedInput\"}} in USD per million tokens");
            var prices = new Dictionary<string, ModelPrice>(StringComparer.Ordinal);
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (string.IsNullOrWhiteSpace(entry.Name))
                    throw new FormatException($"{Setting}: a model name is empty");
                if (!prices.TryAdd(entry.Name, ParsePrice(entry.Name, entry.Value)))
                    throw new FormatException($"{Setting}: {entry.Name}: listed twice");
            }
            return new PriceTable(prices);
        }
    }

    /// <summary>The model's price: listed exactly, else the longest listed <c>k</c> with <paramref name="model"/> starting <c>k-</c>; null when neither.</summary>
    public ModelPrice? Find(string model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (_prices.TryGetValue(model, out var exact))
            return exact;
        for (var dash = model.LastIndexOf('-'); dash > 0; dash = model.LastIndexOf('-', dash - 1))
        {
            if (_byPrefix.TryGetValue(model.AsSpan(0, dash), out var price))
                return price;
        }
        return null;
    }

    /// <summary>
    /// <c>(Input - Cached) * Input + Cached * (CachedInput ?? Input) + Output * Output</c>, per million tokens; null when
    /// the model has no price.
    /// </summary>
    public decimal? Cost(string model, TokenUsage usage)
    {
        ArgumentNullException.ThrowIfNull(usage);
        return Find(model) is { } price ? Cost(price, usage) : null;
    }

    /// <summary>The cost at <paramref name="price"/>; counts an upstream could only get wrong (negative, more cached than input) are clamped.</summary>
    internal static decimal Cost(ModelPrice price, TokenUsage usage)
    {
        var input = Math.Max(0, usage.InputTokens);
        var cached = Math.Clamp(usage.CachedTokens, 0, input);
        var output = Math.Max(0, usage.OutputTokens);
        return ((input - cached) * price.Input + cached * (price.CachedInput ?? price.Input) + output * price.Output) / 1_000_000m;
    }

    private static ModelPrice ParsePrice(string model, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{Setting}: {model}: must be an object {{\"input\", \"output\", \"cachedInput\"}} in USD per million tokens");
        decimal? input = null, output = null, cachedInput = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in value.EnumerateObject())
        {
            if (!seen.Add(field.Name))
                throw new FormatException($"{Setting}: {model}.{field.Name}: listed twice");
            switch (field.Name)
            {
                case "input":
                    input = ParseAmount(model, field);
                    break;
                case "output":
                    output = ParseAmount(model, field);
                    break;
                case "cachedInput":
                    cachedInput = field.Value.ValueKind == JsonValueKind.Null ? null : ParseAmount(model, field);
                    break;
                default:
                    throw new FormatException($"{Setting}: {model}.{field.Name}: unknown field; a price has input, output and cachedInput");
            }
        }
        if (input is null)
            throw new FormatException($"{Setting}: {model}.input: missing; {PriceRule}");
        if (output is null)
            throw new FormatException($"{Setting}: {model}.output: missing; {PriceRule}");
        return new ModelPrice(input.Value, output.Value, cachedInput);
    }

    private static decimal ParseAmount(string model, JsonProperty field) =>
        field.Value.ValueKind == JsonValueKind.Number && field.Value.TryGetDecimal(out var amount) && amount is >= 0 and <= MaxPrice
            ? amount
            : throw new FormatException($"{Setting}: {model}.{field.Name}: {PriceRule}");
}
