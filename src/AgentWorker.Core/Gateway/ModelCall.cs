namespace AgentWorker.Core.Gateway;

/// <summary>One recorded gateway request: the model it was counted under, its usage (null when the response had none) and its cost (null when the model has no price).</summary>
public sealed record ModelCall(string Model, TokenUsage? Usage, decimal? CostUsd);
