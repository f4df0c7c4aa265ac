using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Sqlite;

/// <summary>A claimed job; every operation goes through the queue, conditional on <see cref="Token"/>.</summary>
internal sealed class SqliteJobLease : IJobLease
{
    private readonly SqliteJobQueue queue;

    // Never disposed: it has no timer or linked token to free, and the worker may still be watching
    // the token after the lease ended.
    private readonly CancellationTokenSource cancelRequested = new();
    private int ended;

    public SqliteJobLease(SqliteJobQueue queue, JobRecord job, string token, string workerId)
    {
        this.queue = queue;
        Job = job;
        Token = token;
        WorkerId = workerId;
        // A job handed back while a cancel was pending is still meant to stop.
        if (job.CancelRequested)
            cancelRequested.Cancel();
    }

    public JobRecord Job { get; }

    public int Attempt => Job.Attempts;

    public CancellationToken CancelRequested => cancelRequested.Token;

    /// <summary>Unique per claim; the job row carries it while this lease owns the job.</summary>
    internal string Token { get; }

    internal string WorkerId { get; }

    public Task<bool> ExtendAsync(CancellationToken cancellationToken) => queue.ExtendLeaseAsync(this, cancellationToken);

    public Task CompleteAsync(JobResult result, CancellationToken cancellationToken) => queue.CompleteLeaseAsync(this, result, cancellationToken);

    public Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken) => queue.FailLeaseAsync(this, failure, cancellationToken);

    public Task ReleaseAsync(CancellationToken cancellationToken) => queue.ReleaseLeaseAsync(this, cancellationToken);

    /// <summary>Hands the job back unless the lease already ended (completed, failed, released or lost).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref ended) == 0)
            await queue.ReleaseLeaseAsync(this, CancellationToken.None).ConfigureAwait(false);
    }

    internal void End() => Volatile.Write(ref ended, 1);

    internal void RequestCancel() => cancelRequested.Cancel();
}
