namespace AgentWorker.Core.Queue;

/// <summary>
/// How every backend waits for work in <see cref="IJobQueue.LeaseAsync"/>: look; if nothing is runnable, sleep until
/// <see cref="Wake"/> (an enqueue in this process, or one relayed from other processes by the backend), the poll
/// interval (a missed signal, or producers that send none), or the moment the earliest delayed job becomes due.
/// </summary>
public sealed class LeaseWaiter(QueueOptions options, TimeProvider timeProvider)
{
    // Completed and replaced whenever a job may have become runnable; waiting leases sleep on it.
    private TaskCompletionSource _wake = NewWake();

    /// <summary>A job may have become runnable: every waiting lease looks again.</summary>
    public void Wake() => Interlocked.Exchange(ref _wake, NewWake()).TrySetResult();

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
            // Taken before looking, so a wake-up that arrives while we look still ends the sleep below.
            var woken = Volatile.Read(ref _wake).Task;
            var (lease, nextDue) = await tryLease(cancellationToken).ConfigureAwait(false);
            if (lease is not null)
                return lease;
            var now = timeProvider.GetUtcNow();
            if (now >= deadline)
                return null;
            var sleep = deadline - now < options.PollInterval ? deadline - now : options.PollInterval;
            if (nextDue is { } due && due - now < sleep)
                sleep = due - now;
            await woken.WaitAsync(sleep < TimeSpan.Zero ? TimeSpan.Zero : sleep, timeProvider, cancellationToken)
                .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
