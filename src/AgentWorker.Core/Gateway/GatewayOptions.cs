namespace AgentWorker.Core.Gateway;

/// <summary>The model gateway's settings (MODEL_PRICES, GATEWAY_*).</summary>
public sealed record GatewayOptions
{
    /// <summary>USD per million tokens per model, for the cost of each request and the maxCostUsd budget.</summary>
    public PriceTable Prices { get; init; } = PriceTable.Empty;

    /// <summary>A request body larger than this is refused with 413 before it reaches the vendor.</summary>
    public long MaxRequestBytes { get; init; } = 32L << 20;

    /// <summary>A response larger than this is cut off (the agent sees the connection end).</summary>
    public long MaxResponseBytes { get; init; } = 64L << 20;

    /// <summary>How long the vendor may take to start answering (to send its headers) before the agent gets a 504.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);
}
