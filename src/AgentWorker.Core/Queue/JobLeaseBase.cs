using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Queue;

/// <summary>
/// What every backend's lease shares: the job, the cancel signal, and handing the job back on dispose unless
/// the lease already ended. Backends supply the four operations, each conditional on their lease token.
/// </summary>
public abstract class JobLeaseBase : IJobLease
{
    // Never disposed: nothing to free, and the worker may still watch the token after the lease ended.
    private readonly CancellationTokenSource _cancelRequested = new();
    private int _ended;

    protected JobLeaseBase(JobRecord job)
    {
        Job = job;
        // A job handed back while a cancel was pending is still meant to stop.
        if (job.CancelRequested)
            _cancelRequested.Cancel();
    }

    public JobRecord Job { get; }

    public int Attempt => Job.Attempts;

    public CancellationToken CancelRequested => _cancelRequested.Token;

    public abstract Task<bool> ExtendAsync(CancellationToken cancellationToken);

    public abstract Task CompleteAsync(JobResult result, CancellationToken cancellationToken);

    public abstract Task<JobState> FailAsync(JobFailure failure, CancellationToken cancellationToken);

    public abstract Task ReleaseAsync(CancellationToken cancellationToken);

    /// <summary>Hands the job back unless the lease already ended (completed, failed, released or lost).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _ended) == 0)
            await ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>The lease is over: disposing it no longer hands the job back.</summary>
    public void End() => Volatile.Write(ref _ended, 1);

    /// <summary>Someone asked to stop this job: fires <see cref="CancelRequested"/>.</summary>
    public void RequestCancel() => _cancelRequested.Cancel();
}
