using System.Globalization;
using System.Text.RegularExpressions;
using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Agents;

/// <summary>
/// Reads a registry entry's <c>gateway:</c> (preset names, or maps that start from a preset or name everything) and
/// <c>budget:</c>; every problem is an <see cref="AgentRegistryException"/> naming the field.
/// </summary>
internal static partial class GatewayEntries
{
    private static readonly string[] VendorFields = ["vendor", "baseUrlVariable", "upstream", "keyVariable", "keyHeader", "keyFormat", "api"];
    private static readonly string[] BudgetFields = ["maxRequests", "maxTokens", "maxCostUsd"];

    public static List<ModelVendor> Read(List<object?>? entries, string where)
    {
        var vendors = new List<ModelVendor>();
        foreach (var (entry, index) in (entries ?? []).Select((e, i) => (e, i)))
        {
            var at = $"{where}[{index}]";
            var vendor = entry switch
            {
                string name => ModelVendor.Presets.GetValueOrDefault(name)
                    ?? throw new AgentRegistryException($"{at}: '{name}' is not a known vendor ({string.Join(", ", ModelVendor.Presets.Keys)}); name another with a map of vendor, baseUrlVariable and upstream"),
                Dictionary<object, object?> map => ReadMap(map.ToDictionary(p => p.Key.ToString() ?? "", p => p.Value as string, StringComparer.Ordinal), at),
                _ => throw new AgentRegistryException($"{at}: a vendor name ({string.Join(", ", ModelVendor.Presets.Keys)}) or a map of vendor, baseUrlVariable, upstream, keyVariable, keyHeader, keyFormat, api"),
            };
            if (vendors.Any(v => v.Name == vendor.Name))
                throw new AgentRegistryException($"{at}.vendor: '{vendor.Name}' is listed twice");
            if (vendors.Any(v => v.BaseUrlVariable == vendor.BaseUrlVariable))
                throw new AgentRegistryException($"{at}.baseUrlVariable: {vendor.BaseUrlVariable} is already another vendor's");
            vendors.Add(vendor);
        }
        return vendors;
    }

    private static ModelVendor ReadMap(Dictionary<string, string?> map, string at)
    {
        if (map.Keys.FirstOrDefault(k => !VendorFields.Contains(k)) is { } unknown)
            throw new AgentRegistryException($"{at}.{unknown}: not a vendor field ({string.Join(", ", VendorFields)})");
        var name = map.GetValueOrDefault("vendor");
        if (name is null || !VendorName().IsMatch(name))
            throw new AgentRegistryException($"{at}.vendor: required, lower-case letters, digits and '-' (it becomes the path segment /NAME/ in the gateway)");
        var preset = ModelVendor.Presets.GetValueOrDefault(name);
        var baseUrlVariable = map.GetValueOrDefault("baseUrlVariable") ?? preset?.BaseUrlVariable;
        if (baseUrlVariable is null || !VariableName().IsMatch(baseUrlVariable))
            throw new AgentRegistryException($"{at}.baseUrlVariable: required for a vendor that is not a preset, an environment variable name (e.g. OPENAI_BASE_URL)");
        var upstream = preset?.Upstream;
        if (map.GetValueOrDefault("upstream") is { } upstreamText)
        {
            upstream = Uri.TryCreate(upstreamText, UriKind.Absolute, out var parsed) && parsed.Scheme is "https" or "http" && parsed.Query.Length == 0 && parsed.UserInfo.Length == 0
                ? parsed
                : throw new AgentRegistryException($"{at}.upstream: '{upstreamText}' is not an http(s) URL without credentials or query");
        }
        if (upstream is null)
            throw new AgentRegistryException($"{at}.upstream: required for a vendor that is not a preset, the API's base URL (e.g. http://vllm.internal:8000/v1)");
        var keyVariable = map.ContainsKey("keyVariable") ? map["keyVariable"] : preset?.KeyVariable;
        if (keyVariable is not null && !VariableName().IsMatch(keyVariable))
            throw new AgentRegistryException($"{at}.keyVariable: an environment variable name of the worker's (e.g. OPENAI_API_KEY)");
        var keyFormat = map.GetValueOrDefault("keyFormat") ?? preset?.KeyFormat ?? "Bearer {key}";
        if (!keyFormat.Contains("{key}", StringComparison.Ordinal))
            throw new AgentRegistryException($"{at}.keyFormat: must contain {{key}} where the key goes (e.g. 'Bearer {{key}}')");
        var keyHeader = map.GetValueOrDefault("keyHeader") ?? preset?.KeyHeader ?? "Authorization";
        if (!HeaderName().IsMatch(keyHeader))
            throw new AgentRegistryException($"{at}.keyHeader: '{keyHeader}' is not an HTTP header name");
        var api = preset?.Api ?? ModelApi.OpenAI;
        if (map.GetValueOrDefault("api") is { } apiText)
        {
            api = apiText switch
            {
                "openai" => ModelApi.OpenAI,
                "anthropic" => ModelApi.Anthropic,
                _ => throw new AgentRegistryException($"{at}.api: must be openai or anthropic (the shape of the vendor's errors)"),
            };
        }
        return new ModelVendor
        {
            Name = name, BaseUrlVariable = baseUrlVariable, Upstream = upstream, KeyVariable = keyVariable,
            KeyHeader = keyHeader, KeyFormat = keyFormat, Api = api,
        };
    }

    public static ModelBudget ReadBudget(Dictionary<string, object?>? budget, string where)
    {
        if (budget is null)
            return ModelBudget.None;
        if (budget.Keys.FirstOrDefault(k => !BudgetFields.Contains(k)) is { } unknown)
            throw new AgentRegistryException($"{where}.{unknown}: not a budget field ({string.Join(", ", BudgetFields)})");
        return new ModelBudget(
            (int?)Positive(budget, "maxRequests", where, int.MaxValue),
            (long?)Positive(budget, "maxTokens", where, long.MaxValue),
            Positive(budget, "maxCostUsd", where, 1_000_000_000m));
    }

    private static decimal? Positive(Dictionary<string, object?> budget, string field, string where, decimal max)
    {
        if (!budget.TryGetValue(field, out var value) || value is null)
            return null;
        var whole = field != "maxCostUsd";
        return decimal.TryParse(value as string, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
            && number > 0 && number <= max && (!whole || decimal.Truncate(number) == number)
            ? number
            : throw new AgentRegistryException($"{where}.{field}: must be a positive {(whole ? "whole number" : "number of US dollars")}");
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex VendorName();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex VariableName();

    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    private static partial Regex HeaderName();
}
