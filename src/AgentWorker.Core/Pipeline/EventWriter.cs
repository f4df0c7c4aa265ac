using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Pipeline;

/// <summary>
/// Batches a running attempt's events (log lines arrive from two output pumps at once) and writes them
/// every <c>FlushInterval</c> or every <c>MaxBatch</c> events, so a chatty agent costs a few writes a second.
/// A batch the backend did not take (an outage) is kept for the next flush, up to <c>MaxPending</c> events;
/// the agent's output is never held up by it.
/// </summary>
internal sealed class EventWriter : IAsyncDisposable
{
    private const int MaxBatch = 256;
    private const int MaxPending = 10_000;
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);

    private readonly IJobQueue _queue;
    private readonly string _jobId;
    private readonly int _attempt;
    private readonly List<NewJobEvent> _pending = [];
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly ITimer _timer;
    private int _dropped;
    private bool _failing;

    public EventWriter(IJobQueue queue, string jobId, int attempt, TimeProvider timeProvider)
    {
        _queue = queue;
        _jobId = jobId;
        _attempt = attempt;
        _timer = timeProvider.CreateTimer(_ => _ = FlushInBackgroundAsync(), null, FlushInterval, FlushInterval);
    }

    public ValueTask AddAsync(NewJobEvent jobEvent)
    {
        bool full;
        lock (_pending)
        {
            _pending.Add(jobEvent);
            // While the backend is away the timer alone retries, not every new line.
            full = _pending.Count >= MaxBatch && !_failing;
        }
        return full ? new ValueTask(FlushInBackgroundAsync()) : ValueTask.CompletedTask;
    }

    /// <summary>Writes what is pending; throws when the backend did not take it (then it stays pending).</summary>

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _flushing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            NewJobEvent[] batch;
            lock (_pending)
            {
                if (_dropped > 0)
                    _pending.Insert(0, new NewJobEvent(JobEventKind.Log, $"[agent-worker: {_dropped} event(s) dropped while the queue backend was unreachable]"));
                _dropped = 0;
                batch = [.. _pending];
                _pending.Clear();
            }
            if (batch.Length == 0)
                return;
            try
            {
                await _queue.AppendEventsAsync(_jobId, _attempt, batch, cancellationToken).ConfigureAwait(false);
                _failing = false;
            }
            catch
            {
                lock (_pending)
                {
                    _failing = true;
                    _pending.InsertRange(0, batch);
                    var over = _pending.Count - MaxPending;
                    if (over > 0)
                    {
                        // The oldest go: the latest lines say most about how the attempt ends.
                        _pending.RemoveRange(0, over);
                        _dropped += over;
                    }
                }
                throw;
            }
        }
        finally
        {
            _flushing.Release();
        }
    }

    /// <summary>A flush nobody waits for: what fails stays pending for the next one (the runner's last flush waits out an outage).</summary>
    private async Task FlushInBackgroundAsync()
    {
        try
        {
            await FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Kept pending; see above.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _timer.DisposeAsync().ConfigureAwait(false);
        await FlushInBackgroundAsync().ConfigureAwait(false);
        _flushing.Dispose();
    }
}
