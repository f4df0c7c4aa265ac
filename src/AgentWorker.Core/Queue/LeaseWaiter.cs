namespace AgentWorker.Core.Queue;

/// <summary>
/// How every backend waits for work in <see cref="IJobQueue.LeaseAsync"/>: look; if nothing is runnable, sleep until
/// woken, the poll interval (a missed signal, or producers that send none), or the moment the earliest delayed job
/// becomes due. One new job wakes one sleeper (<see cref="Wake"/>), not all of them: with many idle slots, waking
/// every one for each job would make all but one look in vain, each look a round trip or a transaction.
/// </summary>
public sealed class LeaseWaiter(QueueOptions options, TimeProvider timeProvider)
{
    private readonly Lock gate = new();

    // Waiters that may be looking or sleeping, oldest first. Each registers before it looks, so a wake-up that arrives
    // while it looks still ends its sleep: a job committed before the look is seen by it, one committed after wakes it.
    private readonly LinkedList<TaskCompletionSource> registered = new();

    /// <summary>One job may have become runnable: one waiting lease looks again.</summary>
    public void Wake()
    {
        TaskCompletionSource? chosen = null;
        lock (gate)
        {
            if (registered.First is { } first)
            {
                chosen = first.Value;
                registered.RemoveFirst();
            }
        }
        // Nobody registered: every lease is busy and looks again before it sleeps, so the signal is not needed.
        chosen?.TrySetResult();
    }

    /// <summary>
    /// Every waiting lease looks again: many jobs may have become runnable (recovered leases, a reconnect after
    /// missed signals), or when the next one becomes due has changed (a retry's backoff).
    /// </summary>
    public void WakeAll()
    {
        TaskCompletionSource[] all;
        lock (gate)
        {
            all = [.. registered];
            registered.Clear();
        }
        foreach (var waiter in all)
            waiter.TrySetResult();
    }

    /// <param name="wait">How long to wait for a job; <see cref="Timeout.InfiniteTimeSpan"/> for ever.</param>
    /// <param name="tryLease">Claims a job, or says when the earliest waiting one becomes due.</param>
    /// <param name="cancellationToken">Ends the wait with an <see cref="OperationCanceledException"/>.</param>
    public async Task<TLease?> WaitAsync<TLease>(
        TimeSpan wait,
        Func<CancellationToken, Task<(TLease? Lease, DateTimeOffset? NextDue)>> tryLease,
        CancellationToken cancellationToken)
        where TLease : class
    {
        if (wait != Timeout.InfiniteTimeSpan)
            ArgumentOutOfRangeException.ThrowIfLessThan(wait, TimeSpan.Zero);
        var deadline = wait == Timeout.InfiniteTimeSpan ? DateTimeOffset.MaxValue : timeProvider.GetUtcNow() + wait;
        while (true)
        {
            var woken = Register();
            // Set once this round ends by sleeping: the next round's look answers whatever woke it.
            var answeredByNextLook = false;
            try
            {
                var (lease, nextDue) = await LookAsync(tryLease, cancellationToken).ConfigureAwait(false);
                if (lease is not null)
                    return lease;
                var now = timeProvider.GetUtcNow();
                if (now >= deadline)
                    return null;
                var sleep = deadline - now < options.PollInterval ? deadline - now : options.PollInterval;
                if (nextDue is { } due && due - now < sleep)
                    sleep = due - now;
                await woken.Value.Task.WaitAsync(sleep < TimeSpan.Zero ? TimeSpan.Zero : sleep, timeProvider, cancellationToken)
                    .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                cancellationToken.ThrowIfCancellationRequested();
                answeredByNextLook = true;
            }
            finally
            {
                Leave(woken, passOn: !answeredByNextLook);
            }
        }
    }

    /// <summary>
    /// One look. One that fails after the wait was cancelled reports the cancellation: a queue disposed while a claim is
    /// on its way closes the connection under it, and its waiters must hear that they were stopped, not a network error.
    /// </summary>
    private static async Task<(TLease? Lease, DateTimeOffset? NextDue)> LookAsync<TLease>(
        Func<CancellationToken, Task<(TLease? Lease, DateTimeOffset? NextDue)>> tryLease,
        CancellationToken cancellationToken)
        where TLease : class
    {
        try
        {
            return await tryLease(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception error) when (error is not OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the wait for a lease was cancelled", error, cancellationToken);
        }
    }

    private LinkedListNode<TaskCompletionSource> Register()
    {
        var waiter = new LinkedListNode<TaskCompletionSource>(new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (gate)
            registered.AddLast(waiter);
        return waiter;
    }

    /// <summary>
    /// Deregisters; a wake-up this waiter received but will not answer with a look (it got a lease meanwhile, which may
    /// not be the job it was woken for, or it stops waiting) goes to the next waiter, so no job waits for the poll interval.
    /// </summary>
    private void Leave(LinkedListNode<TaskCompletionSource> waiter, bool passOn)
    {
        lock (gate)
        {
            // Gone already when a wake-up took it off the list.
            if (waiter.List is not null)
                registered.Remove(waiter);
        }
        if (passOn && waiter.Value.Task.IsCompleted)
            Wake();
    }
}
