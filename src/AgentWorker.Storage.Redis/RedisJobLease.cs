using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Redis;

/// <summary>A claimed job. The job hash carries <see cref="Token"/> while this lease owns it; every step checks it.</summary>
internal sealed class RedisJobLease(RedisJobQueue queue, JobRecord job, string token, string workerId) : IJobLease
{
    // Never disposed: nothing to free, and the worker may still watch the token after the lease ended.
    private readonly CancellationTokenSource cancelRequested = StartCancelled(job.CancelRequested);
    private int ended;

    public JobRecord Job { get; } = job;

    public int Attempt => Job.Attempts;

    public CancellationToken CancelRequested => cancelRequested.Token;

    internal string Token { get; } = token;

    internal string WorkerId { get; } = workerId;

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

    // A job handed back while a cancel was pending is still meant to stop.
    private static CancellationTokenSource StartCancelled(bool cancelled)
    {
        var source = new CancellationTokenSource();
        if (cancelled)
            source.Cancel();
        return source;
    }
}
