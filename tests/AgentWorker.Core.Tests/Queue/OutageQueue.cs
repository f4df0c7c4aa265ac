using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Tests.Queue;

/// <summary>What a backend throws when it cannot be reached.</summary>
internal sealed class BackendDownException() : Exception("connection refused");

/// <summary>
/// A queue whose server is "down" while <see cref="Down"/> is set: appends throw <see cref="BackendDownException"/>,
/// which it calls unavailable. Only what the resilience code touches is implemented.
/// </summary>
internal sealed class OutageQueue : IJobQueue
{
    public volatile bool Down;

    public List<NewJobEvent> Appended { get; } = [];

    public string Backend => "fake";

    public bool IsUnavailable(Exception exception) => exception is BackendDownException;

    public Task AppendEventsAsync(string jobId, int attempt, IReadOnlyList<NewJobEvent> events, CancellationToken cancellationToken)
    {
        if (Down)
            throw new BackendDownException();
        lock (Appended)
            Appended.AddRange(events);
        return Task.CompletedTask;
    }

    public Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<int> RecoverAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task PingAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
