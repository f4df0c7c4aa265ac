using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Tests.Sinks;

/// <summary>A queue that only keeps events and answers GetAsync from a dictionary: what <c>JobNotifier</c> uses of one.</summary>
internal sealed class EventLogQueue : IJobQueue
{
    private readonly List<JobEvent> _events = [];

    public Dictionary<string, JobRecord> Jobs { get; } = [];

    public string Backend => "events-only";

    public IReadOnlyList<JobEvent> Events
    {
        get
        {
            lock (_events)
                return [.. _events];
        }
    }

    public Task AppendEventsAsync(string jobId, int attempt, IReadOnlyList<NewJobEvent> events, CancellationToken cancellationToken)
    {
        lock (_events)
        {
            foreach (var e in events)
                _events.Add(new JobEvent(_events.Count + 1, jobId, attempt, DateTimeOffset.UtcNow, e.Kind, e.Message, e.Stream));
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken)
    {
        lock (_events)
            return Task.FromResult<IReadOnlyList<JobEvent>>([.. _events.Where(e => e.JobId == jobId && e.Seq > afterSeq).Take(limit)]);
    }

    public Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken) => Task.FromResult(Jobs.GetValueOrDefault(id));

    public Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task<int> RecoverAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
    public Task PingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
