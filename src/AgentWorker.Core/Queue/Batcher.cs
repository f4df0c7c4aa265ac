namespace AgentWorker.Core.Queue;

/// <summary>
/// Group commit for backends behind a network round trip: requests of one kind that arrive while a batch is on its way
/// to the server go together in the next one, so many slots cost one statement or script call instead of one each.
/// Alone, a request is sent at once (no waiting to fill a batch); each caller is answered when the batch that holds
/// its request came back, so nothing is acknowledged before the server stored it.
/// </summary>
/// <param name="execute">
/// Sends one batch; returns one result per request, in order. A request the server refused on its own (a lost lease,
/// say) is a result, not an exception: an exception fails every caller of the batch.
/// </param>
/// <param name="maxBatch">Most requests in one batch, which bounds one statement's size and time.</param>
public sealed class Batcher<TRequest, TResult>(Func<IReadOnlyList<TRequest>, Task<IReadOnlyList<TResult>>> execute, int maxBatch = 256)
{
    private readonly Lock gate = new();
    private List<Entry> pending = [];
    private bool sending;

    /// <summary>
    /// Sends <paramref name="request"/> with the next batch and returns its result. <paramref name="cancellationToken"/>
    /// counts until the batch is sent; after that the outcome is awaited, so it is never left unknown.
    /// </summary>
    public Task<TResult> RunAsync(TRequest request, CancellationToken cancellationToken)
    {
        var entry = new Entry(request, cancellationToken);
        bool lead;
        lock (gate)
        {
            pending.Add(entry);
            lead = !sending;
            sending = true;
        }
        if (lead)
            _ = SendAsync();
        return entry.Completion.Task;
    }

    // Runs on the caller that found no batch on its way, up to its first await; then on whichever thread completed
    // the previous batch, until nothing is left.
    private async Task SendAsync()
    {
        while (true)
        {
            List<Entry> batch;
            lock (gate)
            {
                if (pending.Count == 0)
                {
                    sending = false;
                    return;
                }
                if (pending.Count <= maxBatch)
                {
                    batch = pending;
                    pending = [];
                }
                else
                {
                    batch = pending.GetRange(0, maxBatch);
                    pending.RemoveRange(0, maxBatch);
                }
            }
            batch.RemoveAll(entry => entry.Cancelled);
            if (batch.Count == 0)
                continue;
            try
            {
                var results = await execute([.. batch.Select(entry => entry.Request)]).ConfigureAwait(false);
                if (results.Count != batch.Count)
                    throw new InvalidOperationException($"a batch of {batch.Count} requests came back with {results.Count} results");
                for (var i = 0; i < batch.Count; i++)
                    batch[i].Completion.TrySetResult(results[i]);
            }
            catch (Exception error)
            {
                foreach (var entry in batch)
                    entry.Completion.TrySetException(error);
            }
        }
    }

    private sealed class Entry(TRequest request, CancellationToken cancellationToken)
    {
        public TRequest Request { get; } = request;

        // Callers continue on the thread pool, never inline on the thread that sends the next batch.
        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Cancelled => cancellationToken.IsCancellationRequested && Completion.TrySetCanceled(cancellationToken);
    }
}
