namespace AgentWorker.Core.Gateway;

/// <summary>How a vendor's API reports errors, so that the gateway's own refusals read like the vendor's.</summary>
public enum ModelApi
{
    /// <summary><c>{"error": {"message", "type", "code"}}</c> (OpenAI, OpenRouter, vLLM, llama.cpp server, Ollama).</summary>
    OpenAI,

    /// <summary><c>{"type": "error", "error": {"type", "message"}}</c>.</summary>
    Anthropic,
}

/// <summary>
/// One model vendor behind the worker's gateway (registry <c>gateway:</c>): the agent reads its base URL from
/// <see cref="BaseUrlVariable"/> and its key from <see cref="KeyVariable"/>, and gets the gateway's URL and a per-run
/// placeholder there; the gateway sends requests on to <see cref="Upstream"/> with the real key, read from the worker's
/// own <see cref="KeyVariable"/>, in header <see cref="KeyHeader"/> as <see cref="KeyFormat"/>.
/// </summary>
public sealed record ModelVendor
{
    /// <summary>The vendor's name, also the first segment of the path inside the gateway (<c>/openai/…</c>).</summary>
    public required string Name { get; init; }
    public required string BaseUrlVariable { get; init; }
    public required Uri Upstream { get; init; }

    /// <summary>The worker-side variable with the real key; null or unset: no key is sent (a local server).</summary>
    public string? KeyVariable { get; init; }
    public string KeyHeader { get; init; } = "Authorization";

    /// <summary>The key header's value with <c>{key}</c> where the key goes, e.g. <c>Bearer {key}</c>.</summary>
    public string KeyFormat { get; init; } = "Bearer {key}";
    public ModelApi Api { get; init; } = ModelApi.OpenAI;

    /// <summary>The vendors a registry entry can name by name alone.</summary>
    public static IReadOnlyDictionary<string, ModelVendor> Presets { get; } = new Dictionary<string, ModelVendor>(StringComparer.Ordinal)
    {
        ["openai"] = new() { Name = "openai", BaseUrlVariable = "OPENAI_BASE_URL", Upstream = new Uri("https://api.openai.com/v1"), KeyVariable = "OPENAI_API_KEY" },
        ["anthropic"] = new()
        {
            Name = "anthropic", BaseUrlVariable = "ANTHROPIC_BASE_URL", Upstream = new Uri("https://api.anthropic.com"), KeyVariable = "ANTHROPIC_API_KEY",
            KeyHeader = "x-api-key", KeyFormat = "{key}", Api = ModelApi.Anthropic,
        },
        ["openrouter"] = new() { Name = "openrouter", BaseUrlVariable = "OPENROUTER_BASE_URL", Upstream = new Uri("https://openrouter.ai/api/v1"), KeyVariable = "OPENROUTER_API_KEY" },
    };

    /// <summary>The key header's value for <paramref name="key"/>.</summary>
    public string KeyValue(string key) => KeyFormat.Replace("{key}", key, StringComparison.Ordinal);

    /// <summary>The upstream URL for a path below the vendor's segment (<c>/chat/completions</c>) and a query string.</summary>
    public Uri UpstreamFor(string path, string query) => new(Upstream.GetLeftPart(UriPartial.Path).TrimEnd('/') + path + query);
}
