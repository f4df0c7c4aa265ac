namespace AgentWorker.Core.Gateway;

/// <summary>
/// One request through the model gateway as the job's log records it (event kind <c>model</c>): the vendor's answer and
/// what it reported using, or why the gateway refused the request before it reached the vendor (a refusal for the budget
/// comes before the request is read, so it names no model).
/// </summary>
public sealed record ModelEvent(
    string Vendor, string? Model, int Status, long? InputTokens, long? OutputTokens, long? CachedTokens, decimal? CostUsd,
    double LatencyMs, bool Stream, string? Refused = null);
