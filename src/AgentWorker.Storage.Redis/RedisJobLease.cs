using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Redis;

/// <summary>A claimed job. The job hash carries <see cref="Token"/> while this lease owns it; every step checks it.</summary>
internal sealed class RedisJobLease(RedisJobQueue queue, JobRecord job, string token, string workerId) : JobLeaseBase(job)
{
    internal string Token { get; } = token;

    internal string WorkerId { get; } = workerId;

    public override Task<bool> ExtendAsync(CancellationToken cancellationToken) => queue.ExtendLeaseAsync(this, cancellationToken);

    public override Task CompleteAsync(JobResult result, CancellationToken cancellationToken) => queue.CompleteLeaseAsync(this, result, cancellationToken);

    public override Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken) => queue.FailLeaseAsync(this, failure, cancellationToken);

    public override Task ReleaseAsync(CancellationToken cancellationToken) => queue.ReleaseLeaseAsync(this, cancellationToken);
}
