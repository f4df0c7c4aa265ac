namespace AgentWorker.Core.Gateway;

/// <summary>
/// The tokens one model response used, normalized across vendors so budgets and prices need one formula:
/// <see cref="InputTokens"/> includes the cached ones (OpenAI's <c>prompt_tokens</c> already does; for Anthropic it is
/// <c>input_tokens + cache_read_input_tokens + cache_creation_input_tokens</c>), and <see cref="CachedTokens"/> are the
/// part of the input read from the vendor's prompt cache.
/// </summary>
public sealed record TokenUsage(long InputTokens, long OutputTokens, long CachedTokens)
{
    /// <summary>What counts against a <c>maxTokens</c> budget; saturates instead of wrapping on absurd upstream figures.</summary>
    public long Total => SaturatingAdd(InputTokens, OutputTokens);

    internal static long SaturatingAdd(long a, long b)
    {
        var sum = unchecked(a + b);
        return ((a ^ sum) & (b ^ sum)) < 0 ? (a < 0 ? long.MinValue : long.MaxValue) : sum;
    }
}
