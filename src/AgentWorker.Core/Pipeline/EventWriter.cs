using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Pipeline;

/// <summary>
/// Batches a running attempt's events (log lines arrive from two output pumps at once) and writes them
/// every <c>FlushInterval</c> or every <c>MaxBatch</c> events, so a chatty agent costs a few writes a second.
/// </summary>
internal sealed class EventWriter : IAsyncDisposable
{
    private const int MaxBatch = 256;
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);

    private readonly IJobQueue _queue;
    private readonly string _jobId;
    private readonly int _attempt;
    private readonly List<NewJobEvent> _pending = [];
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly ITimer _timer;

    public EventWriter(IJobQueue queue, string jobId, int attempt, TimeProvider timeProvider)
    {
        _queue = queue;
        _jobId = jobId;
        _attempt = attempt;
        _timer = timeProvider.CreateTimer(_ => _ = FlushAsync(CancellationToken.None), null, FlushInterval, FlushInterval);
    }

    public ValueTask AddAsync(NewJobEvent jobEvent)
    {
        bool full;
        lock (_pending)
        {
            _pending.Add(jobEvent);
            full = _pending.Count >= MaxBatch;
        }
        return full ? new ValueTask(FlushAsync(CancellationToken.None)) : ValueTask.CompletedTask;
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _flushing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            NewJobEvent[] batch;
            lock (_pending)
            {
                batch = [.. _pending];
                _pending.Clear();
            }
            if (batch.Length > 0)
                await _queue.AppendEventsAsync(_jobId, _attempt, batch, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _flushing.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _timer.DisposeAsync().ConfigureAwait(false);
        await FlushAsync(CancellationToken.None).ConfigureAwait(false);
        _flushing.Dispose();
    }
}
