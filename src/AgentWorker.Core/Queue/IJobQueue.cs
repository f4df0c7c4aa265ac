using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Queue;

/// <summary>
/// The durable queue contract every backend implements (SQLite, Redis, PostgreSQL).
/// Semantics are at-least-once with leases: a leased job stays stored until it is completed,
/// failed or handed back, and a lease that is not renewed expires and the job is leased again.
/// Implementations are thread-safe and long-lived (one per process).
/// </summary>
public interface IJobQueue : IAsyncDisposable
{
    /// <summary>Backend name shown in health and stats, e.g. <c>sqlite</c>.</summary>
    string Backend { get; }

    /// <summary>Stores a job unless one with the same id exists; then returns the existing one.</summary>
    Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the next runnable job for <paramref name="workerId"/>, waiting up to <paramref name="wait"/>
    /// for one to arrive (woken by enqueue, not by busy polling). Returns null when none came in time.
    /// Expired leases of other workers are given back before claiming.
    /// </summary>
    Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken);

    Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken);

    /// <summary>Jobs newest first, optionally filtered.</summary>
    Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken);

    /// <summary>The next <paramref name="count"/> jobs that would be leased, in lease order, without claiming them.</summary>
    Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken);

    Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken);

    /// <summary>Cancels a queued job at once; asks the worker running it to stop.</summary>
    Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken);

    /// <summary>Queues a finished job (failed, dead, cancelled, timed out) again with a fresh attempt budget.</summary>
    Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken);

    /// <summary>Gives every job whose lease expired back to the queue; returns how many.</summary>
    Task<int> RecoverAsync(CancellationToken cancellationToken);

    Task AppendEventsAsync(string jobId, int attempt, IReadOnlyList<NewJobEvent> events, CancellationToken cancellationToken);

    /// <summary>Events with <see cref="JobEvent.Seq"/> greater than <paramref name="afterSeq"/>, oldest first.</summary>
    Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken);

    /// <summary>Throws when the backend cannot be reached.</summary>
    Task PingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// True when <paramref name="exception"/>, thrown by a call on this queue, means the backend cannot be reached
    /// right now (server down or restarting, connection lost): the same call may succeed once it is back. Workers and
    /// the HTTP intake retry such calls with backoff and report the backend down meanwhile. An embedded backend has
    /// no outages to report.
    /// </summary>
    bool IsUnavailable(Exception exception) => false;
}

/// <summary>A claimed job. Disposing a lease that was neither completed nor failed hands the job back.</summary>
public interface IJobLease : IAsyncDisposable
{
    JobRecord Job { get; }

    /// <summary>Number of this attempt, starting at 1.</summary>
    int Attempt { get; }

    /// <summary>Fires when someone asked to cancel this job (seen in-process at once, across processes on the next renewal).</summary>
    CancellationToken CancelRequested { get; }

    /// <summary>Renews the lease. Returns false when the lease was lost (it expired and the job went to another worker).</summary>
    Task<bool> ExtendAsync(CancellationToken cancellationToken);

    /// <summary>Marks the job succeeded. Throws <see cref="LeaseLostException"/> when this worker no longer holds it.</summary>
    Task CompleteAsync(Results.JobResult result, CancellationToken cancellationToken);

    /// <summary>Records a failed attempt; returns the state the job moved to (retrying, failed, dead, timed_out or cancelled).</summary>
    Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken);

    /// <summary>Hands the job back to the queue without counting the attempt (graceful shutdown).</summary>
    Task ReleaseAsync(CancellationToken cancellationToken);
}

public sealed record EnqueueResult(JobRecord Job, bool Created);

/// <summary>A page of jobs, newest first. <see cref="Repo"/> matches jobs whose repository URL contains it (case-sensitive).</summary>
public sealed record JobQuery(JobState? State = null, string? Agent = null, int Limit = 50, int Offset = 0, string? Repo = null);

public sealed record JobPage(IReadOnlyList<JobRecord> Items, long Total);

public sealed record QueueStats(long Queued, long Running, long Retrying, long Succeeded, long Failed, long Cancelled, long TimedOut, long Dead)
{
    /// <summary>Jobs waiting to run, the depth the intake guard compares against.</summary>
    public long Depth => Queued + Retrying;

    /// <summary>Stats from per-state counts; a state missing from <paramref name="counts"/> has none.</summary>
    public static QueueStats From(IReadOnlyDictionary<JobState, long> counts)
    {
        long Count(JobState state) => counts.GetValueOrDefault(state);
        return new QueueStats(
            Queued: Count(JobState.Queued),
            Running: Count(JobState.Running),
            Retrying: Count(JobState.Retrying),
            Succeeded: Count(JobState.Succeeded),
            Failed: Count(JobState.Failed),
            Cancelled: Count(JobState.Cancelled),
            TimedOut: Count(JobState.TimedOut),
            Dead: Count(JobState.Dead));
    }
}

public enum CancelOutcome { NotFound, AlreadyFinished, Cancelled, CancelRequested }

public enum RetryOutcome
{
    NotFound,
    NotFinished,

    /// <summary>A succeeded job is never run again, so a job is never marked succeeded twice.</summary>
    AlreadySucceeded,
    Requeued,
}

/// <summary>How an attempt ended, if not in success.</summary>
public enum FailureKind
{
    /// <summary>Retried with backoff while attempts remain, then dead.</summary>
    Error,

    /// <summary>Will not get better by retrying (bad repository, unknown agent): failed at once.</summary>
    Permanent,
    TimedOut,
    Cancelled,
}

public sealed record JobFailure(FailureKind Kind, string Error, int? ExitCode = null, Results.JobResult? Result = null)
{
    /// <summary>
    /// Where the job goes and the attempt outcome recorded, the same on every backend. An Error goes to
    /// <see cref="JobState.Retrying"/>; the backend turns that into dead when the attempt budget is spent.
    /// </summary>
    public (JobState State, string Outcome) Destination() => Kind switch
    {
        FailureKind.Error => (JobState.Retrying, AttemptOutcome.Error),
        FailureKind.Permanent => (JobState.Failed, AttemptOutcome.Failed),
        FailureKind.TimedOut => (JobState.TimedOut, AttemptOutcome.TimedOut),
        FailureKind.Cancelled => (JobState.Cancelled, AttemptOutcome.Cancelled),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "unknown failure kind"),
    };
}

/// <summary>The lease was lost: another worker owns the job now, so this worker's outcome is discarded.</summary>
public sealed class LeaseLostException(string jobId)
    : InvalidOperationException($"job {jobId}: lease lost (it expired and the job was given to another worker)")
{
    public string JobId { get; } = jobId;
}
