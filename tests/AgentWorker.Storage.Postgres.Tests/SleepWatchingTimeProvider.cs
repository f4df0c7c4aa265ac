namespace AgentWorker.Storage.Postgres.Tests;

/// <summary>
/// System time that tells when a waiter goes to sleep (creates a timer), so a test can act only once a lease
/// has looked, found nothing, and waits; anything that ends the wait early then must be a wake-up.
/// </summary>
internal sealed class SleepWatchingTimeProvider : TimeProvider
{
    private TaskCompletionSource nextSleep = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes at the next timer created after this was read.</summary>
    public Task NextSleep => Volatile.Read(ref nextSleep).Task;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = System.CreateTimer(callback, state, dueTime, period);
        Interlocked.Exchange(ref nextSleep, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        return timer;
    }
}
