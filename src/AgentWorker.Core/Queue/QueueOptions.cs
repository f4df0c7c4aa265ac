namespace AgentWorker.Core.Queue;

/// <summary>Lease and retry policy shared by all backends.</summary>
public sealed record QueueOptions
{
    /// <summary>How long a lease lasts without renewal before another worker may take the job.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Backoff before the second attempt; doubles per attempt, ±20 % jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Longest time a waiting worker sleeps before looking again for jobs enqueued by other processes.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Backoff after <paramref name="failedAttempt"/> (1-based) failed attempts, jittered by <paramref name="random"/> in [0, 1).</summary>
    public TimeSpan Backoff(int failedAttempt, double random)
    {
        var exponent = Math.Clamp(failedAttempt - 1, 0, 30);
        var raw = RetryBaseDelay.TotalMilliseconds * Math.Pow(2, exponent);
        var capped = Math.Min(raw, RetryMaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.8 + (0.4 * random)));
    }
}
