using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Sqlite;

/// <summary>A claimed job; every operation goes through the queue, conditional on <see cref="Token"/>.</summary>
internal sealed class SqliteJobLease(SqliteJobQueue queue, JobRecord job, string token, string workerId) : JobLeaseBase(job)
{
    /// <summary>Unique per claim; the job row carries it while this lease owns the job.</summary>
    internal string Token { get; } = token;

    internal string WorkerId { get; } = workerId;

    public override Task<bool> ExtendAsync(CancellationToken cancellationToken) => queue.ExtendLeaseAsync(this, cancellationToken);

    public override Task CompleteAsync(JobResult result, CancellationToken cancellationToken) => queue.CompleteLeaseAsync(this, result, cancellationToken);

    public override Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken) => queue.FailLeaseAsync(this, failure, cancellationToken);

    public override Task ReleaseAsync(CancellationToken cancellationToken) => queue.ReleaseLeaseAsync(this, cancellationToken);
}
