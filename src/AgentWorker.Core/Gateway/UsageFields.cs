namespace AgentWorker.Core.Gateway;

/// <summary>
/// The model and token counts seen so far in one response, each kept as the vendor named it so that "the last value
/// seen wins" holds per field (Anthropic's <c>message_delta</c> repeats <c>output_tokens</c> cumulatively and may
/// leave the input counts of <c>message_start</c> standing). Normalized into a <see cref="TokenUsage"/> only at the end.
/// </summary>
internal sealed class UsageFields
{
    public string? Model { get; set; }

    /// <summary>OpenAI <c>prompt_tokens</c>, or <c>input_tokens</c> (Responses API: includes cached; Anthropic: excludes cache reads and writes).</summary>
    public long? Input { get; set; }

    /// <summary><c>completion_tokens</c> or <c>output_tokens</c>.</summary>
    public long? Output { get; set; }

    /// <summary>OpenAI <c>prompt_tokens_details.cached_tokens</c> or <c>input_tokens_details.cached_tokens</c>.</summary>
    public long? CachedDetail { get; set; }

    /// <summary>Anthropic <c>cache_read_input_tokens</c>.</summary>
    public long? CacheRead { get; set; }

    /// <summary>Anthropic <c>cache_creation_input_tokens</c>.</summary>
    public long? CacheCreation { get; set; }

    /// <summary>Takes every field <paramref name="newer"/> carries, keeping the rest.</summary>
    public void Overwrite(UsageFields newer)
    {
        Model = newer.Model ?? Model;
        Input = newer.Input ?? Input;
        Output = newer.Output ?? Output;
        CachedDetail = newer.CachedDetail ?? CachedDetail;
        CacheRead = newer.CacheRead ?? CacheRead;
        CacheCreation = newer.CacheCreation ?? CacheCreation;
    }

    /// <summary>
    /// The normalized usage, or null when no token count was seen. Anthropic's cache reads and writes are input the
    /// vendor reports apart, so they are added to it; an OpenAI-shaped response has none and its input stays as is.
    /// </summary>
    public TokenUsage? ToUsage()
    {
        if (Input is null && Output is null && CachedDetail is null && CacheRead is null && CacheCreation is null)
            return null;
        var input = TokenUsage.SaturatingAdd(TokenUsage.SaturatingAdd(Input ?? 0, CacheRead ?? 0), CacheCreation ?? 0);
        return new TokenUsage(input, Output ?? 0, CacheRead ?? CachedDetail ?? 0);
    }
}
