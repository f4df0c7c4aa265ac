using AgentWorker.Core.Results;

namespace AgentWorker.Core.Jobs;

/// <summary>A job as the queue stores it: the request plus its lifecycle.</summary>
public sealed record JobRecord
{
    public required JobSpec Spec { get; init; }
    public required JobState State { get; init; }

    /// <summary>Attempts started so far (the running attempt included).</summary>
    public int Attempts { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }

    /// <summary>Earliest time the job may be leased (later than now while it waits out a retry backoff).</summary>
    public required DateTimeOffset RunAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }
    public string? Error { get; init; }
    public JobResult? Result { get; init; }
    public bool CancelRequested { get; init; }
    public IReadOnlyList<AttemptRecord> AttemptHistory { get; init; } = [];

    public string Id => Spec.Id;
}

/// <summary>How an attempt ended, as stored in <see cref="AttemptRecord.Outcome"/>; the same words on every backend.</summary>
public static class AttemptOutcome
{
    public const string Succeeded = "succeeded";

    /// <summary>Failed and will be retried (or went dead).</summary>
    public const string Error = "error";
    public const string Failed = "failed";
    public const string TimedOut = "timed_out";
    public const string Cancelled = "cancelled";

    /// <summary>The worker stopped renewing (it died); the job went back to the queue.</summary>
    public const string LeaseExpired = "lease_expired";

    /// <summary>Handed back on shutdown without counting.</summary>
    public const string Released = "released";
}

/// <summary>One attempt at running a job, kept after the job ends.</summary>
public sealed record AttemptRecord(
    int Number,
    string Worker,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string? Outcome,
    int? ExitCode,
    string? Error);
