namespace AgentWorker.Core.Gateway;

/// <summary>
/// A run's model use, as <c>result.usage</c> carries it. <see cref="CostUsd"/> sums the priced models (null when no
/// model was priced); <see cref="UnpricedModels"/> names the models that used tokens but have no price, so a cost that
/// leaves them out says so. <see cref="Models"/> is ordered by model name.
/// </summary>
public sealed record ModelUsageReport(int Requests, long InputTokens, long OutputTokens, long CachedTokens, decimal? CostUsd,
    IReadOnlyList<string> UnpricedModels, string? BudgetExceeded, IReadOnlyList<ModelUsageLine> Models);

/// <summary>One model's share of a run; <see cref="CostUsd"/> is null when the model has no price, <see cref="LatencyMs"/> sums its requests' latencies.</summary>
public sealed record ModelUsageLine(string Model, int Requests, long InputTokens, long OutputTokens, long CachedTokens, decimal? CostUsd, double LatencyMs);
