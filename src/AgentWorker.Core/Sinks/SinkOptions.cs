namespace AgentWorker.Core.Sinks;

/// <summary>How deliveries to sinks are tried.</summary>
public sealed record SinkOptions
{
    /// <summary>Tries per delivery, the first included.</summary>
    public int MaxAttempts { get; init; } = 6;

    /// <summary>Wait before the first retry; doubles per retry, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest one try may take (a webhook's request, a results-table insert).</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>On shutdown, how long pending deliveries may go on before they are abandoned.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
