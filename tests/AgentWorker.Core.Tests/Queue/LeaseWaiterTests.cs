using AgentWorker.Core.Queue;
using AgentWorker.Testing;
using Microsoft.Extensions.Time.Testing;

namespace AgentWorker.Core.Tests.Queue;

/// <summary>
/// Wake-one and its safety net. Time is fake and the poll interval never passes, so a waiter looks again only when a
/// wake-up reaches it: a lost wake-up shows as a waiter that never gets its job.
/// </summary>
public sealed class LeaseWaiterTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);
    private static readonly QueueOptions Options = new() { PollInterval = TimeSpan.FromDays(1) };

    private readonly FakeTimeProvider time = new();
    private readonly CancellationTokenSource timeout = new(TimeSpan.FromMinutes(1));

    [Fact]
    public async Task WaitAsync_LookFailsAfterTheWaitWasCancelled_ReportsTheCancellation()
    {
        var waiter = new LeaseWaiter(Options, time);
        using var stop = new CancellationTokenSource();
        // What a queue disposed during a claim sees: its connection closed under the call.
        Task<(Lease?, DateTimeOffset?)> ClosedUnderIt(CancellationToken token)
        {
            stop.Cancel();
            throw new InvalidOperationException("Reading is not allowed after reader was completed.");
        }

        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter.WaitAsync(Timeout.InfiniteTimeSpan, ClosedUnderIt, stop.Token));
        Assert.IsType<InvalidOperationException>(cancelled.InnerException);
    }

    [Fact]
    public async Task WaitAsync_LookFails_TheErrorReachesTheCaller()
    {
        var waiter = new LeaseWaiter(Options, time);
        static Task<(Lease?, DateTimeOffset?)> Down(CancellationToken token) => throw new InvalidOperationException("backend down");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => waiter.WaitAsync(Timeout.InfiniteTimeSpan, Down, timeout.Token));
        Assert.Equal("backend down", error.Message);
    }

    [Fact]
    public async Task Wake_OnePerJob_EachWaiterLooksOnceMoreAndGetsOneJob()
    {
        var waiter = new LeaseWaiter(Options, time);
        var jobs = new Jobs();
        var waiting = Enumerable.Range(0, 8).Select(_ => waiter.WaitAsync(Timeout.InfiniteTimeSpan, jobs.TryTakeAsync, timeout.Token)).ToList();
        await Eventually.UntilAsync(() => jobs.Looks == 8, Deadline, "every waiter looked once and went to sleep");

        for (var i = 1; i <= 8; i++)
        {
            jobs.Add();
            waiter.Wake();
            var leased = i;
            await Eventually.UntilAsync(() => waiting.Count(task => task.IsCompleted) == leased, Deadline, $"job {leased} leased");
        }
        var leases = await Task.WhenAll(waiting).WaitAsync(Deadline);

        Assert.Equal(Enumerable.Range(1, 8), leases.Select(lease => lease!.Number).Order());
        // Waking all would have sent every sleeper to look after the first job, most of them in vain.
        Assert.Equal(16, jobs.Looks);
    }

    [Fact]
    public async Task Wake_ReachesAWaiterThatTakesAnotherJob_PassesTheWakeOn()
    {
        var waiter = new LeaseWaiter(Options, time);
        var jobs = new Jobs();
        var firstLook = new TaskCompletionSource();
        // A looks first and is held there; B looks and, missing the job already there, sleeps.
        var a = waiter.WaitAsync(Timeout.InfiniteTimeSpan, async token => { await firstLook.Task; return await jobs.TryTakeAsync(token); }, timeout.Token);
        var bLooks = 0;
        var b = waiter.WaitAsync(Timeout.InfiniteTimeSpan, token => Interlocked.Increment(ref bLooks) == 1 ? Task.FromResult<(Lease?, DateTimeOffset?)>((null, null)) : jobs.TryTakeAsync(token), timeout.Token);
        jobs.Add();
        await Eventually.UntilAsync(() => Volatile.Read(ref bLooks) == 1, Deadline, "B looked and went to sleep");

        // The second job's wake-up reaches A, still looking, which then takes the first job.
        jobs.Add();
        waiter.Wake();
        firstLook.SetResult();

        Assert.Equal(1, (await a.WaitAsync(Deadline))?.Number);
        Assert.Equal(2, (await b.WaitAsync(Deadline))?.Number);
    }

    [Fact]
    public async Task Wake_ReachesAWaiterThatIsCancelled_TheJobStillGetsTaken()
    {
        var waiter = new LeaseWaiter(Options, time);
        var jobs = new Jobs();
        using var cancelA = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var a = waiter.WaitAsync(Timeout.InfiniteTimeSpan, jobs.TryTakeAsync, cancelA.Token);
        await Eventually.UntilAsync(() => jobs.Looks == 1, Deadline, "A looked and went to sleep");
        var b = waiter.WaitAsync(Timeout.InfiniteTimeSpan, jobs.TryTakeAsync, timeout.Token);
        await Eventually.UntilAsync(() => jobs.Looks == 2, Deadline, "B looked and went to sleep");

        jobs.Add();
        waiter.Wake();
        await cancelA.CancelAsync();

        // A either took the job before it saw the cancel, or it passed the wake-up on to B.
        var taken = await Task.WhenAny(a, b).WaitAsync(Deadline);
        if (taken == a && a.IsCanceled)
            taken = await Task.WhenAny(b).WaitAsync(Deadline);
        Assert.Equal(1, (await taken)?.Number);
    }

    [Fact]
    public async Task WakeAll_EveryWaiterLooksAgain()
    {
        var waiter = new LeaseWaiter(Options, time);
        var jobs = new Jobs();
        var waiting = Enumerable.Range(0, 4).Select(_ => waiter.WaitAsync(Timeout.InfiniteTimeSpan, jobs.TryTakeAsync, timeout.Token)).ToList();
        await Eventually.UntilAsync(() => jobs.Looks == 4, Deadline, "every waiter looked once");

        waiter.WakeAll();

        await Eventually.UntilAsync(() => jobs.Looks == 8, Deadline, "every waiter looked again");
        Assert.All(waiting, task => Assert.False(task.IsCompleted));
    }

    [Fact]
    public async Task WaitAsync_NothingComesWithinWait_ReturnsNullAtTheDeadline()
    {
        var waiter = new LeaseWaiter(Options, time);
        var jobs = new Jobs();
        var waiting = waiter.WaitAsync(TimeSpan.FromSeconds(5), jobs.TryTakeAsync, timeout.Token);
        await Eventually.UntilAsync(() => jobs.Looks == 1, Deadline, "the waiter looked once");

        time.Advance(TimeSpan.FromSeconds(5));

        Assert.Null(await waiting.WaitAsync(Deadline));
    }

    private sealed record Lease(int Number);

    /// <summary>A queue of numbered jobs that counts every look.</summary>
    private sealed class Jobs
    {
        private int added;
        private int taken;
        private int looks;

        public int Looks => Volatile.Read(ref looks);

        public void Add() => Interlocked.Increment(ref added);

        public Task<(Lease? Lease, DateTimeOffset? NextDue)> TryTakeAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref looks);
            while (true)
            {
                var current = Volatile.Read(ref taken);
                if (current >= Volatile.Read(ref added))
                    return Task.FromResult<(Lease?, DateTimeOffset?)>((null, null));
                if (Interlocked.CompareExchange(ref taken, current + 1, current) == current)
                    return Task.FromResult<(Lease?, DateTimeOffset?)>((new Lease(current + 1), null));
            }
        }
    }
}
