using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Postgres;

/// <summary>A claimed job. The job row carries <see cref="Token"/> while this lease owns it; every change is conditional on it.</summary>
internal sealed class PostgresJobLease(PostgresJobQueue queue, JobRecord job, Guid token, string workerId) : JobLeaseBase(job)
{
    internal Guid Token { get; } = token;

    internal string WorkerId { get; } = workerId;

    public override Task<bool> ExtendAsync(CancellationToken cancellationToken) => queue.ExtendLeaseAsync(this, cancellationToken);

    public override Task CompleteAsync(JobResult result, CancellationToken cancellationToken) => queue.CompleteLeaseAsync(this, result, cancellationToken);

    public override Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken) => queue.FailLeaseAsync(this, failure, cancellationToken);

    public override Task ReleaseAsync(CancellationToken cancellationToken) => queue.ReleaseLeaseAsync(this, cancellationToken);
}
