using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;
using Microsoft.Extensions.Time.Testing;

namespace AgentWorker.Storage.ContractTests;

/// <summary>
/// The behaviour every <see cref="IJobQueue"/> backend must show. Subclass once per backend. Lease expiry
/// and backoff run on a <see cref="FakeTimeProvider"/> (leases taken with <c>wait: TimeSpan.Zero</c>);
/// only the tests about waiting use real time, and they wait on conditions with generous deadlines.
/// </summary>
public abstract class JobQueueContractTests : IAsyncLifetime
{
    // Far above any healthy latency, far below LongWait: returning within it proves the wait was cut short.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan LongWait = TimeSpan.FromMinutes(2);

    private readonly List<IJobQueue> queues = [];
    private readonly CancellationTokenSource timeout = new(TimeSpan.FromMinutes(1));

    protected static QueueOptions Options { get; } = new()
    {
        LeaseDuration = TimeSpan.FromSeconds(30),
        RetryBaseDelay = TimeSpan.FromSeconds(10),
        RetryMaxDelay = TimeSpan.FromMinutes(5),
        PollInterval = TimeSpan.FromMilliseconds(100),
    };

    /// <summary>Cancelled after a minute of real time, so a broken backend fails the test instead of hanging it.</summary>
    protected CancellationToken Token => timeout.Token;

    /// <summary>A new queue on a new, empty store that no other test sees.</summary>
    protected abstract Task<IJobQueue> CreateQueueAsync(QueueOptions options, TimeProvider timeProvider);

    /// <summary>Whether an enqueue on one client wakes waiters of another at once (else they find it on their next poll).</summary>
    protected virtual bool WakesOtherClients => true;

    /// <summary>Another client on the store of <paramref name="first"/>, as a second process would open it.</summary>
    protected abstract Task<IJobQueue> CreateSecondClientAsync(IJobQueue first, QueueOptions options, TimeProvider timeProvider);

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var queue in queues)
            await queue.DisposeAsync();
        timeout.Dispose();
    }

    [Fact]
    public async Task EnqueueAsync_NewJob_RoundTripsEveryField()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        var spec = new JobSpec
        {
            Id = "job-1",
            Agent = "codex",
            Repo = new RepoRef("https://example.test/repo.git", "main", "0123abcd"),
            Prompt = "fix the failing test",
            Mode = JobMode.Apply,
            Network = NetworkMode.McpOnly,
            McpUrl = "http://mcp.example.test/sse",
            TimeoutSeconds = 600,
            MaxAttempts = 5,
            Priority = 7,
            RunAt = time.GetUtcNow().AddMinutes(-1),
            Metadata = new JsonObject
            {
                ["source"] = "webhook",
                ["nested"] = new JsonObject { ["n"] = 42, ["ok"] = true },
                ["list"] = new JsonArray(1, "two", null),
            },
        };

        var result = await queue.EnqueueAsync(spec, Token);
        var stored = await queue.GetAsync("job-1", Token);

        Assert.True(result.Created);
        foreach (var job in new[] { result.Job, Assert.IsType<JobRecord>(stored) })
        {
            Assert.Equal(spec with { Metadata = null }, job.Spec with { Metadata = null });
            Assert.True(JsonNode.DeepEquals(spec.Metadata, job.Spec.Metadata), job.Spec.Metadata?.ToJsonString());
            Assert.Equal(JobState.Queued, job.State);
            Assert.Equal(0, job.Attempts);
            Assert.Equal(time.GetUtcNow(), job.CreatedAt);
            Assert.Equal(time.GetUtcNow(), job.UpdatedAt);
            Assert.Equal(spec.RunAt, job.RunAt);
            Assert.Null(job.FinishedAt);
            Assert.Null(job.Error);
            Assert.Null(job.Result);
            Assert.False(job.CancelRequested);
            Assert.Empty(job.AttemptHistory);
        }
    }

    [Fact]
    public async Task EnqueueAsync_SameIdTwice_ReturnsExistingWithoutDuplicate()
    {
        var queue = await OpenAsync(NewFakeTime());

        var first = await queue.EnqueueAsync(Spec("job-1") with { Prompt = "first" }, Token);
        var second = await queue.EnqueueAsync(Spec("job-1") with { Prompt = "second" }, Token);

        Assert.True(first.Created);
        Assert.False(second.Created);
        Assert.Equal("first", second.Job.Spec.Prompt);
        Assert.Equal(1, (await queue.ListAsync(new JobQuery(), Token)).Total);
        Assert.NotNull(await LeaseNowAsync(queue));
        Assert.Null(await LeaseNowAsync(queue));
    }

    [Fact]
    public async Task EnqueueAsync_ManyAtOnceWithRepeatedIds_StoresEachIdOnce()
    {
        var queue = await OpenAsync(NewFakeTime());
        var ids = Enumerable.Range(1, 40).Select(n => $"job-{n:D2}").ToList();

        // Every id twice, all in flight together, so a backend that groups concurrent writes sees duplicates in one group.
        var results = await Task.WhenAll(ids.Concat(ids).Select(id => queue.EnqueueAsync(Spec(id) with { Prompt = id }, Token)));

        Assert.Equal(ids, results.Where(result => result.Created).Select(result => result.Job.Id).Order());
        Assert.All(results, result => Assert.Equal((result.Job.Id, JobState.Queued), (result.Job.Spec.Prompt, result.Job.State)));
        Assert.Equal(40, (await queue.ListAsync(new JobQuery(), Token)).Total);
        Assert.Equal(40, (await queue.GetStatsAsync(Token)).Queued);
        Assert.Equal(ids, (await LeaseAllNowAsync(queue)).Order());
    }

    [Fact]
    public async Task GetAsync_UnknownId_ReturnsNull()
    {
        var queue = await OpenAsync(NewFakeTime());

        Assert.Null(await queue.GetAsync("missing", Token));
    }

    [Fact]
    public async Task LeaseAsync_QueuedJob_ReturnsRunningRecordWithOpenAttempt()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1"), Token);

        var lease = await LeaseExpectedAsync(queue, "worker-a");

        Assert.Equal(1, lease.Attempt);
        Assert.Equal(JobState.Running, lease.Job.State);
        Assert.Equal(1, lease.Job.Attempts);
        Assert.False(lease.CancelRequested.IsCancellationRequested);
        var attempt = Assert.Single(lease.Job.AttemptHistory);
        Assert.Equal(new AttemptRecord(1, "worker-a", time.GetUtcNow(), null, null, null, null), attempt);
        Assert.Equal(JobState.Running, (await queue.GetAsync("job-1", Token))?.State);
    }

    [Fact]
    public async Task LeaseAsync_EqualPriority_LeasesInEnqueueOrder()
    {
        var queue = await OpenAsync(NewFakeTime());
        foreach (var id in new[] { "a", "b", "c" })
            await queue.EnqueueAsync(Spec(id), Token);

        var leased = await LeaseAllNowAsync(queue);

        Assert.Equal(["a", "b", "c"], leased);
    }

    [Fact]
    public async Task LeaseAsync_MixedPriorities_LeasesHighestFirstThenOldest()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("low-1", priority: 0), Token);
        await queue.EnqueueAsync(Spec("high", priority: 5), Token);
        await queue.EnqueueAsync(Spec("mid", priority: 1), Token);
        await queue.EnqueueAsync(Spec("low-2", priority: 0), Token);

        var leased = await LeaseAllNowAsync(queue);

        Assert.Equal(["high", "mid", "low-1", "low-2"], leased);
    }

    [Fact]
    public async Task LeaseAsync_RunAtInFuture_NotLeasedUntilDue()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("later", runAt: time.GetUtcNow().AddMinutes(1)), Token);
        await queue.EnqueueAsync(Spec("now"), Token);

        Assert.Equal("now", (await LeaseExpectedAsync(queue)).Job.Id);
        Assert.Null(await LeaseNowAsync(queue));
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal("later", (await LeaseExpectedAsync(queue)).Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_TwentyConcurrentLeasers_LeaseEachJobExactlyOnce()
    {
        var queue = await OpenAsync(TimeProvider.System);

        await AssertEachJobLeasedOnceAsync([queue], leasersPerClient: 20);
    }

    [Fact]
    public async Task LeaseAsync_ConcurrentLeasersOnTwoClients_LeaseEachJobExactlyOnce()
    {
        var first = await OpenAsync(TimeProvider.System);
        var second = await OpenSecondAsync(first, TimeProvider.System);

        await AssertEachJobLeasedOnceAsync([first, second], leasersPerClient: 10);
    }

    [Fact]
    public async Task LeaseAsync_EmptyQueue_ReturnsNullOnlyAfterWait()
    {
        var queue = await OpenAsync(TimeProvider.System);
        var wait = TimeSpan.FromMilliseconds(300);
        var clock = Stopwatch.StartNew();

        var lease = await queue.LeaseAsync("w1", wait, Token);

        Assert.Null(lease);
        // Small slack for the wall clock the queue measures with and the monotonic one measured here.
        Assert.True(clock.Elapsed >= wait - TimeSpan.FromMilliseconds(20), $"returned after {clock.Elapsed}");
    }

    [Fact]
    public async Task LeaseAsync_EnqueueWhileWaiting_WakesWaiterAtOnce()
    {
        // With a poll interval as long as the wait, only the enqueue's wake-up can end the wait early.
        var queue = await OpenAsync(TimeProvider.System, Options with { PollInterval = LongWait });
        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        Assert.False(leasing.IsCompleted);

        await queue.EnqueueAsync(Spec("job-1"), Token);

        var lease = await leasing.WaitAsync(Prompt, Token);
        Assert.Equal("job-1", lease?.Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_EnqueuedBySecondClientWhileWaiting_LeasesIt()
    {
        var queue = await OpenAsync(TimeProvider.System);
        var other = await OpenSecondAsync(queue, TimeProvider.System);
        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        Assert.False(leasing.IsCompleted);

        await other.EnqueueAsync(Spec("job-1"), Token);

        var lease = await leasing.WaitAsync(Prompt, Token);
        Assert.Equal("job-1", lease?.Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_ManyWaitersFewJobs_EachJobLeasedPromptlyAndTheRestKeepWaiting()
    {
        // With a poll interval as long as the wait, only wake-ups move anyone: one lost on the way strands a job.
        var queue = await OpenAsync(TimeProvider.System, Options with { PollInterval = LongWait });
        var waiting = Enumerable.Range(0, 10).Select(n => queue.LeaseAsync($"w{n}", LongWait, Token)).ToList();
        await EveryWaiterLookedAsync(queue);

        foreach (var id in new[] { "job-1", "job-2", "job-3" })
            await queue.EnqueueAsync(Spec(id), Token);

        var deadline = Task.Delay(Prompt, Token);
        while (waiting.Count(task => task.IsCompleted) < 3 && !deadline.IsCompleted)
            await Task.WhenAny([deadline, .. waiting.Where(task => !task.IsCompleted)]);
        var leased = waiting.Where(task => task.IsCompletedSuccessfully).Select(task => task.Result?.Job.Id).Order().ToList();
        Assert.Equal(["job-1", "job-2", "job-3"], leased);
        Assert.Equal(7, waiting.Count(task => !task.IsCompleted));
    }

    [Fact]
    public async Task LeaseAsync_ManyWaitersOnSecondClientBatchEnqueuedByFirst_EachJobLeasedPromptly()
    {
        // A backend that signals other clients must wake as many of their waiters as jobs it enqueued, even when it
        // enqueued them together; one that does not (SQLite) is left to its poll interval.
        var queue = await OpenAsync(TimeProvider.System);
        var other = await OpenSecondAsync(queue, TimeProvider.System, Options with { PollInterval = WakesOtherClients ? LongWait : Options.PollInterval });
        var waiting = Enumerable.Range(0, 8).Select(n => other.LeaseAsync($"w{n}", LongWait, Token)).ToList();
        await EveryWaiterLookedAsync(other);
        var ids = Enumerable.Range(1, 5).Select(n => $"job-{n}").ToList();

        await Task.WhenAll(ids.Select(id => queue.EnqueueAsync(Spec(id), Token)));

        var deadline = Task.Delay(Prompt, Token);
        while (waiting.Count(task => task.IsCompleted) < ids.Count && !deadline.IsCompleted)
            await Task.WhenAny([deadline, .. waiting.Where(task => !task.IsCompleted)]);
        Assert.Equal(ids, waiting.Where(task => task.IsCompletedSuccessfully).Select(task => task.Result?.Job.Id).Order());
    }

    [Fact]
    public async Task LeaseAsync_WaitingForDelayedJob_LeasesItWhenDue()
    {
        var queue = await OpenAsync(TimeProvider.System, Options with { PollInterval = LongWait });
        await queue.EnqueueAsync(Spec("job-1", runAt: TimeProvider.System.GetUtcNow().AddMilliseconds(300)), Token);

        var lease = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);

        Assert.Equal("job-1", lease?.Job.Id);
        Assert.True(TimeProvider.System.GetUtcNow() >= lease?.Job.RunAt, "leased before it was due");
    }

    [Fact]
    public async Task LeaseAsync_TokenCancelledWhileWaiting_Throws()
    {
        var queue = await OpenAsync(TimeProvider.System, Options with { PollInterval = LongWait });
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var leasing = queue.LeaseAsync("w1", LongWait, cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leasing.WaitAsync(Prompt, Token));
    }

    [Fact]
    public async Task DisposeAsync_WhileLeaseWaits_CancelsWaiter()
    {
        var queue = await OpenAsync(TimeProvider.System, Options with { PollInterval = LongWait });
        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        Assert.False(leasing.IsCompleted);

        await queue.DisposeAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leasing.WaitAsync(Prompt, Token));
    }

    [Fact]
    public async Task ExtendAsync_OwnedLease_KeepsJobFromOtherWorkers()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        var other = await OpenSecondAsync(queue, time);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var lease = await LeaseExpectedAsync(queue);

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(await lease.ExtendAsync(Token));
        time.Advance(TimeSpan.FromSeconds(20));

        Assert.Null(await LeaseNowAsync(other, "w2"));
        Assert.Equal(0, await other.RecoverAsync(Token));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal("job-1", (await LeaseExpectedAsync(other, "w2")).Job.Id);
    }

    [Fact]
    public async Task CompleteAsync_LeaseExpiredAndJobTakenOver_ThrowsLeaseLostAndJobSucceedsOnce()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        var other = await OpenSecondAsync(queue, time);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var first = await LeaseExpectedAsync(queue, "w1");
        time.Advance(Options.LeaseDuration + TimeSpan.FromSeconds(1));

        var second = await LeaseExpectedAsync(other, "w2");

        Assert.Equal(2, second.Attempt);
        Assert.False(await first.ExtendAsync(Token));
        var lost = await Assert.ThrowsAsync<LeaseLostException>(() => first.CompleteAsync(new JobResult(), Token));
        Assert.Equal("job-1", lost.JobId);
        await Assert.ThrowsAsync<LeaseLostException>(() => first.FailAsync(new JobFailure(FailureKind.Error, "late"), Token));
        await first.DisposeAsync();
        await second.CompleteAsync(new JobResult { Summary = "done" }, Token);
        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(JobState.Succeeded, job.State);
        Assert.Equal("done", job.Result?.Summary);
        Assert.Equal([("w1", "lease_expired"), ("w2", "succeeded")], job.AttemptHistory.Select(a => (a.Worker, a.Outcome)));
        Assert.Equal(["queued", "running", "queued", "running", "succeeded"], await StateStoryAsync(queue, "job-1"));
    }

    [Fact]
    public async Task CompleteAsync_ManyAtOnceOneLeaseLost_OnlyThatOneFailsAndTheOthersSucceed()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        var other = await OpenSecondAsync(queue, time);
        await queue.EnqueueAsync(Spec("lost"), Token);
        var stale = await LeaseExpectedAsync(queue, "w1");
        time.Advance(Options.LeaseDuration + TimeSpan.FromSeconds(1));
        var ids = Enumerable.Range(1, 9).Select(n => $"job-{n}").ToList();
        foreach (var id in ids)
            await queue.EnqueueAsync(Spec(id), Token);
        var takeover = await LeaseExpectedAsync(other, "w2");
        var leases = new List<IJobLease>();
        foreach (var _ in ids)
            leases.Add(await LeaseExpectedAsync(queue, "w1"));

        // Sent together, so a backend that commits concurrent writes as one group gets them in one.
        var completing = leases.Select(lease => lease.CompleteAsync(new JobResult { Summary = lease.Job.Id }, Token)).ToList();
        var lost = stale.CompleteAsync(new JobResult { Summary = "stale" }, Token);
        await Task.WhenAll(completing);

        Assert.Equal("lost", (await Assert.ThrowsAsync<LeaseLostException>(() => lost)).JobId);
        Assert.Equal("lost", takeover.Job.Id);
        foreach (var id in ids)
        {
            var job = Assert.IsType<JobRecord>(await queue.GetAsync(id, Token));
            Assert.Equal((JobState.Succeeded, id), (job.State, job.Result?.Summary));
        }
        Assert.Equal(JobState.Running, (await queue.GetAsync("lost", Token))?.State);
        await takeover.CompleteAsync(new JobResult(), Token);
        Assert.Equal(10, (await queue.GetStatsAsync(Token)).Succeeded);
    }

    [Fact]
    public async Task CompleteAsync_OwnedLease_StoresResultAndClosesAttempt()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var lease = await LeaseExpectedAsync(queue);
        var result = SampleResult(exitCode: 0);
        time.Advance(TimeSpan.FromSeconds(5));

        await lease.CompleteAsync(result, Token);

        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(JobState.Succeeded, job.State);
        Assert.Equal(time.GetUtcNow(), job.FinishedAt);
        Assert.Null(job.Error);
        AssertResultEqual(result, job.Result);
        var attempt = Assert.Single(job.AttemptHistory);
        Assert.Equal("succeeded", attempt.Outcome);
        Assert.Equal(0, attempt.ExitCode);
        Assert.Equal(time.GetUtcNow(), attempt.FinishedAt);
        await Assert.ThrowsAsync<LeaseLostException>(() => lease.CompleteAsync(result, Token));
    }

    [Fact]
    public async Task FailAsync_ErrorWithAttemptsLeft_RetriesWithBackoffUntilDead()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1", maxAttempts: 3), Token);

        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var lease = await LeaseExpectedAsync(queue);
            Assert.Equal(attempt, lease.Attempt);
            var failedAt = time.GetUtcNow();

            var state = await lease.FailAsync(new JobFailure(FailureKind.Error, $"boom {attempt}", ExitCode: 10 + attempt), Token);

            if (attempt == 3)
            {
                Assert.Equal(JobState.Dead, state);
                break;
            }
            Assert.Equal(JobState.Retrying, state);
            var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
            Assert.Equal(JobState.Retrying, job.State);
            Assert.Equal($"boom {attempt}", job.Error);
            var earliest = Options.Backoff(attempt, 0);
            var latest = Options.Backoff(attempt, 1);
            Assert.InRange(job.RunAt, failedAt + earliest, failedAt + latest);
            time.Advance(earliest - TimeSpan.FromSeconds(1));
            Assert.Null(await LeaseNowAsync(queue));
            time.Advance(latest - earliest + TimeSpan.FromSeconds(1));
        }

        var dead = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(JobState.Dead, dead.State);
        Assert.Equal(3, dead.Attempts);
        Assert.Equal("boom 3", dead.Error);
        Assert.Equal(time.GetUtcNow(), dead.FinishedAt);
        Assert.Equal([11, 12, 13], dead.AttemptHistory.Select(a => a.ExitCode));
        Assert.All(dead.AttemptHistory, a => Assert.Equal("error", a.Outcome));
        Assert.Null(await LeaseNowAsync(queue));
    }

    [Theory]
    [InlineData(FailureKind.Permanent, JobState.Failed)]
    [InlineData(FailureKind.TimedOut, JobState.TimedOut)]
    [InlineData(FailureKind.Cancelled, JobState.Cancelled)]
    public async Task FailAsync_NonRetryableKind_EndsInMatchingStateAtOnce(FailureKind kind, JobState expected)
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1", maxAttempts: 3), Token);
        var lease = await LeaseExpectedAsync(queue);
        var result = SampleResult(exitCode: 3);

        var state = await lease.FailAsync(new JobFailure(kind, "it broke", ExitCode: 3, Result: result), Token);

        Assert.Equal(expected, state);
        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(expected, job.State);
        Assert.Equal("it broke", job.Error);
        Assert.Equal(time.GetUtcNow(), job.FinishedAt);
        AssertResultEqual(result, job.Result);
        var attempt = Assert.Single(job.AttemptHistory);
        Assert.Equal((3, "it broke"), (attempt.ExitCode, attempt.Error));
        Assert.NotNull(attempt.FinishedAt);
        Assert.Null(await LeaseNowAsync(queue));
    }

    [Fact]
    public async Task ReleaseAsync_LeasedJob_RequeuesWithoutCountingAttempt()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var first = await LeaseExpectedAsync(queue);

        await first.ReleaseAsync(Token);

        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(JobState.Queued, job.State);
        Assert.Equal(0, job.Attempts);
        Assert.Equal("released", Assert.Single(job.AttemptHistory).Outcome);
        Assert.Equal(1, (await LeaseExpectedAsync(queue)).Attempt);
    }

    [Fact]
    public async Task DisposeAsync_UnfinishedLease_ReleasesJob()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);

        await using (await LeaseExpectedAsync(queue))
        {
        }

        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal((JobState.Queued, 0), (job.State, job.Attempts));
        Assert.Equal("job-1", (await LeaseExpectedAsync(queue)).Job.Id);
    }

    [Fact]
    public async Task CancelAsync_QueuedJob_CancelsAtOnce()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1"), Token);

        var outcome = await queue.CancelAsync("job-1", "by user", Token);

        Assert.Equal(CancelOutcome.Cancelled, outcome);
        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal((JobState.Cancelled, "by user", time.GetUtcNow()), (job.State, job.Error, job.FinishedAt));
        Assert.Null(await LeaseNowAsync(queue));
        Assert.Equal(["queued", "cancelled"], await StateStoryAsync(queue, "job-1"));
    }

    [Fact]
    public async Task CancelAsync_RunningJobLeasedByThisClient_FiresLeaseTokenAtOnce()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var lease = await LeaseExpectedAsync(queue);

        var outcome = await queue.CancelAsync("job-1", "by user", Token);

        Assert.Equal(CancelOutcome.CancelRequested, outcome);
        Assert.True(lease.CancelRequested.IsCancellationRequested);
        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal((JobState.Running, true), (job.State, job.CancelRequested));
        Assert.Equal(JobState.Cancelled, await lease.FailAsync(new JobFailure(FailureKind.Cancelled, "cancelled"), Token));
    }

    [Fact]
    public async Task ExtendAsync_CancelRequestedBySecondClient_FiresLeaseToken()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        var other = await OpenSecondAsync(queue, time);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var lease = await LeaseExpectedAsync(queue);

        Assert.Equal(CancelOutcome.CancelRequested, await other.CancelAsync("job-1", "by user", Token));
        Assert.True(await lease.ExtendAsync(Token));

        Assert.True(lease.CancelRequested.IsCancellationRequested);
    }

    [Fact]
    public async Task CancelAsync_FinishedJob_ReturnsAlreadyFinished()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        await (await LeaseExpectedAsync(queue)).CompleteAsync(new JobResult(), Token);

        Assert.Equal(CancelOutcome.AlreadyFinished, await queue.CancelAsync("job-1", "by user", Token));
        Assert.Equal(JobState.Succeeded, (await queue.GetAsync("job-1", Token))?.State);
    }

    [Fact]
    public async Task CancelAsync_UnknownJob_ReturnsNotFound()
    {
        var queue = await OpenAsync(NewFakeTime());

        Assert.Equal(CancelOutcome.NotFound, await queue.CancelAsync("missing", "by user", Token));
    }

    [Fact]
    public async Task RetryAsync_DeadJob_RequeuesWithFreshBudgetAndKeepsHistory()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1", maxAttempts: 1), Token);
        var lease = await LeaseExpectedAsync(queue);
        Assert.Equal(JobState.Dead, await lease.FailAsync(new JobFailure(FailureKind.Error, "boom", ExitCode: 9), Token));

        var outcome = await queue.RetryAsync("job-1", Token);

        Assert.Equal(RetryOutcome.Requeued, outcome);
        var job = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal((JobState.Queued, 0, null, null), (job.State, job.Attempts, job.Error, job.FinishedAt));
        Assert.Equal(9, Assert.Single(job.AttemptHistory).ExitCode);
        var again = await LeaseExpectedAsync(queue);
        Assert.Equal(1, again.Attempt);
        Assert.Equal(2, again.Job.AttemptHistory.Count);
    }

    [Fact]
    public async Task RetryAsync_QueuedOrRunningJob_ReturnsNotFinished()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("running"), Token);
        await LeaseExpectedAsync(queue);
        await queue.EnqueueAsync(Spec("queued"), Token);

        Assert.Equal(RetryOutcome.NotFinished, await queue.RetryAsync("queued", Token));
        Assert.Equal(RetryOutcome.NotFinished, await queue.RetryAsync("running", Token));
        Assert.Equal(JobState.Running, (await queue.GetAsync("running", Token))?.State);
    }

    [Fact]
    public async Task RetryAsync_SucceededJob_IsRefusedAsAlreadySucceeded()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        await (await LeaseExpectedAsync(queue)).CompleteAsync(new JobResult(), Token);

        Assert.Equal(RetryOutcome.AlreadySucceeded, await queue.RetryAsync("job-1", Token));
        Assert.Equal(JobState.Succeeded, (await queue.GetAsync("job-1", Token))?.State);
    }

    [Fact]
    public async Task RetryAsync_UnknownJob_ReturnsNotFound()
    {
        var queue = await OpenAsync(NewFakeTime());

        Assert.Equal(RetryOutcome.NotFound, await queue.RetryAsync("missing", Token));
    }

    [Fact]
    public async Task RecoverAsync_ExpiredLeases_GivesThemBackAndCountsThem()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("retry-me", maxAttempts: 3), Token);
        await queue.EnqueueAsync(Spec("exhausted", maxAttempts: 1), Token);
        await queue.EnqueueAsync(Spec("renewed"), Token);
        await LeaseExpectedAsync(queue);
        await LeaseExpectedAsync(queue);
        var renewed = await LeaseExpectedAsync(queue);
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(await renewed.ExtendAsync(Token));
        time.Advance(TimeSpan.FromSeconds(11));

        var recovered = await queue.RecoverAsync(Token);

        Assert.Equal(2, recovered);
        var retried = Assert.IsType<JobRecord>(await queue.GetAsync("retry-me", Token));
        Assert.Equal((JobState.Queued, 1), (retried.State, retried.Attempts));
        Assert.Equal("lease_expired", Assert.Single(retried.AttemptHistory).Outcome);
        Assert.Equal(JobState.Dead, (await queue.GetAsync("exhausted", Token))?.State);
        Assert.Equal(JobState.Running, (await queue.GetAsync("renewed", Token))?.State);
        Assert.Equal(0, await queue.RecoverAsync(Token));
    }

    [Fact]
    public async Task ListAsync_FiltersAndPaging_NewestFirstWithTotal()
    {
        var queue = await OpenAsync(NewFakeTime());
        foreach (var (id, agent) in new[] { ("j1", "a"), ("j2", "b"), ("j3", "a"), ("j4", "a"), ("j5", "b") })
            await queue.EnqueueAsync(Spec(id) with { Agent = agent }, Token);
        await LeaseExpectedAsync(queue);

        await AssertPageAsync(queue, new JobQuery(), ["j5", "j4", "j3", "j2", "j1"], 5);
        await AssertPageAsync(queue, new JobQuery(Agent: "a", Limit: 2), ["j4", "j3"], 3);
        await AssertPageAsync(queue, new JobQuery(Agent: "a", Limit: 2, Offset: 2), ["j1"], 3);
        await AssertPageAsync(queue, new JobQuery(State: JobState.Running), ["j1"], 1);
        await AssertPageAsync(queue, new JobQuery(State: JobState.Queued, Agent: "b"), ["j5", "j2"], 2);
    }

    [Fact]
    public async Task ListAsync_RepoFilter_MatchesPartOfTheUrlAlongsideOtherFilters()
    {
        var queue = await OpenAsync(NewFakeTime());
        foreach (var (id, agent, url) in new[]
        {
            ("r1", "a", "https://git.example/team/app.git"),
            ("r2", "b", "https://git.example/team/app.git"),
            ("r3", "a", "/srv/git/tool"),
            ("r4", "a", "https://git.example/team/App-2.git"),
        })
        {
            await queue.EnqueueAsync(Spec(id) with { Agent = agent, Repo = new RepoRef(url) }, Token);
        }
        await LeaseExpectedAsync(queue);

        await AssertPageAsync(queue, new JobQuery(Repo: "team/app"), ["r2", "r1"], 2);
        await AssertPageAsync(queue, new JobQuery(Repo: "git.example", Limit: 1, Offset: 1), ["r2"], 3);
        await AssertPageAsync(queue, new JobQuery(Agent: "a", Repo: "team/"), ["r4", "r1"], 2);
        await AssertPageAsync(queue, new JobQuery(State: JobState.Running, Repo: "app.git"), ["r1"], 1);
        await AssertPageAsync(queue, new JobQuery(Repo: "nowhere"), [], 0);
    }

    [Fact]
    public async Task PeekAsync_RunnableJobs_ListsThemInLeaseOrderWithoutClaiming()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("a", priority: 0), Token);
        await queue.EnqueueAsync(Spec("b", priority: 5), Token);
        await queue.EnqueueAsync(Spec("c", priority: 0), Token);
        await queue.EnqueueAsync(Spec("delayed", priority: 9, runAt: time.GetUtcNow().AddMinutes(1)), Token);

        var all = await queue.PeekAsync(10, Token);
        var firstTwo = await queue.PeekAsync(2, Token);

        Assert.Equal(["b", "a", "c"], all.Select(job => job.Id));
        Assert.Equal(["b", "a"], firstTwo.Select(job => job.Id));
        Assert.All(all, job => Assert.Equal(JobState.Queued, job.State));
        Assert.Equal("b", (await LeaseExpectedAsync(queue)).Job.Id);
    }

    [Fact]
    public async Task GetStatsAsync_JobsInEveryState_CountsEachState()
    {
        var queue = await OpenAsync(NewFakeTime());
        await EnqueueAndLeaseAsync(queue, Spec("running"));
        await (await EnqueueAndLeaseAsync(queue, Spec("retrying", maxAttempts: 3))).FailAsync(new JobFailure(FailureKind.Error, "x"), Token);
        await (await EnqueueAndLeaseAsync(queue, Spec("succeeded"))).CompleteAsync(new JobResult(), Token);
        await (await EnqueueAndLeaseAsync(queue, Spec("failed"))).FailAsync(new JobFailure(FailureKind.Permanent, "x"), Token);
        await (await EnqueueAndLeaseAsync(queue, Spec("timed-out"))).FailAsync(new JobFailure(FailureKind.TimedOut, "x"), Token);
        await (await EnqueueAndLeaseAsync(queue, Spec("dead", maxAttempts: 1))).FailAsync(new JobFailure(FailureKind.Error, "x"), Token);
        await queue.EnqueueAsync(Spec("cancelled"), Token);
        await queue.CancelAsync("cancelled", "x", Token);
        await queue.EnqueueAsync(Spec("queued-1"), Token);
        await queue.EnqueueAsync(Spec("queued-2"), Token);

        var stats = await queue.GetStatsAsync(Token);

        Assert.Equal(new QueueStats(Queued: 2, Running: 1, Retrying: 1, Succeeded: 1, Failed: 1, Cancelled: 1, TimedOut: 1, Dead: 1), stats);
        Assert.Equal(3, stats.Depth);
    }

    [Fact]
    public async Task AppendEventsAsync_ThenReadEvents_ReturnsThemInOrderAfterSeq()
    {
        var time = NewFakeTime();
        var queue = await OpenAsync(time);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        await queue.EnqueueAsync(Spec("job-2"), Token);
        var lease = await LeaseExpectedAsync(queue);
        NewJobEvent[] appended =
        [
            new(JobEventKind.Log, "one", "stdout"),
            new(JobEventKind.Progress, "50%"),
            new(JobEventKind.Log, "two", "stderr"),
        ];

        await queue.AppendEventsAsync("job-1", lease.Attempt, appended, Token);
        await queue.AppendEventsAsync("job-2", 0, [new(JobEventKind.Log, "other job")], Token);

        var all = await queue.ReadEventsAsync("job-1", 0, 100, Token);
        Assert.Equal(all.Select(e => e.Seq).Order(), all.Select(e => e.Seq));
        Assert.Equal(all.Count, all.Select(e => e.Seq).Distinct().Count());
        Assert.All(all, e => Assert.Equal("job-1", e.JobId));
        var mine = all.Where(e => e.Kind != JobEventKind.State).ToList();
        Assert.Equal(appended, mine.Select(e => new NewJobEvent(e.Kind, e.Message, e.Stream)));
        Assert.All(mine, e => Assert.Equal((1, time.GetUtcNow()), (e.Attempt, e.At)));
        var after = await queue.ReadEventsAsync("job-1", mine[0].Seq, 100, Token);
        Assert.Equal(["50%", "two"], after.Where(e => e.Kind != JobEventKind.State).Select(e => e.Message));
        Assert.Equal(all.Take(2), await queue.ReadEventsAsync("job-1", 0, 2, Token));
    }

    [Fact]
    public async Task AppendEventsAsync_EveryKind_ReadsBackAsThatKind()
    {
        var queue = await OpenAsync(NewFakeTime());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        NewJobEvent[] appended = [.. Enum.GetValues<JobEventKind>().Select(kind => new NewJobEvent(kind, $"a {kind} event"))];

        await queue.AppendEventsAsync("job-1", 0, appended, Token);

        var read = await queue.ReadEventsAsync("job-1", 0, 100, Token);
        Assert.Equal(appended, read.Where(e => e.Message.StartsWith("a ", StringComparison.Ordinal)).Select(e => new NewJobEvent(e.Kind, e.Message, e.Stream)));
    }

    /// <summary>
    /// Returns once the leases already waiting on <paramref name="queue"/> have looked for work (and found none), so
    /// what is enqueued next can only reach them by a wake-up: a lease that looks behind them finds nothing either.
    /// </summary>
    private async Task EveryWaiterLookedAsync(IJobQueue queue) => Assert.Null(await queue.LeaseAsync("probe", TimeSpan.Zero, Token));

    /// <summary>Leases with <c>wait: TimeSpan.Zero</c>, as tests on fake time must.</summary>
    protected Task<IJobLease?> LeaseNowAsync(IJobQueue queue, string workerId = "w1") => queue.LeaseAsync(workerId, TimeSpan.Zero, Token);

    protected async Task<IJobLease> LeaseExpectedAsync(IJobQueue queue, string workerId = "w1") =>
        await LeaseNowAsync(queue, workerId) ?? throw new InvalidOperationException("expected a runnable job");

    protected static JobSpec Spec(string id, int priority = 0, int maxAttempts = 3, DateTimeOffset? runAt = null) => new()
    {
        Id = id,
        Agent = "ssot_auditor",
        Repo = new RepoRef("https://example.test/repo.git"),
        Priority = priority,
        MaxAttempts = maxAttempts,
        RunAt = runAt,
    };

    protected static FakeTimeProvider NewFakeTime() => new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private async Task<IJobQueue> OpenAsync(TimeProvider timeProvider, QueueOptions? options = null) =>
        Track(await CreateQueueAsync(options ?? Options, timeProvider));

    private async Task<IJobQueue> OpenSecondAsync(IJobQueue first, TimeProvider timeProvider, QueueOptions? options = null) =>
        Track(await CreateSecondClientAsync(first, options ?? Options, timeProvider));

    private IJobQueue Track(IJobQueue queue)
    {
        queues.Add(queue);
        return queue;
    }

    private async Task<List<string>> LeaseAllNowAsync(IJobQueue queue)
    {
        var ids = new List<string>();
        while (await LeaseNowAsync(queue) is { } lease)
        {
            ids.Add(lease.Job.Id);
            await lease.CompleteAsync(new JobResult(), Token);
        }
        return ids;
    }

    private async Task<IJobLease> EnqueueAndLeaseAsync(IJobQueue queue, JobSpec spec)
    {
        await queue.EnqueueAsync(spec, Token);
        var lease = await LeaseExpectedAsync(queue);
        Assert.Equal(spec.Id, lease.Job.Id);
        return lease;
    }

    private async Task AssertEachJobLeasedOnceAsync(IReadOnlyList<IJobQueue> clients, int leasersPerClient)
    {
        var ids = Enumerable.Range(1, 50).Select(n => $"job-{n:D2}").ToList();
        foreach (var id in ids)
            await clients[0].EnqueueAsync(Spec(id), Token);
        var leased = new ConcurrentBag<string>();

        var leasers = clients
            .SelectMany((client, c) => Enumerable.Range(0, leasersPerClient).Select(n => (Client: client, Worker: $"w{c}-{n}")))
            .Select(leaser => Task.Run(async () =>
            {
                while (await leaser.Client.LeaseAsync(leaser.Worker, TimeSpan.Zero, Token) is { } lease)
                {
                    leased.Add(lease.Job.Id);
                    await lease.CompleteAsync(new JobResult(), Token);
                }
            }));
        await Task.WhenAll(leasers);

        Assert.Equal(ids, leased.Order());
        Assert.Equal(50, (await clients[0].GetStatsAsync(Token)).Succeeded);
    }

    private async Task AssertPageAsync(IJobQueue queue, JobQuery query, string[] expectedIds, long expectedTotal)
    {
        var page = await queue.ListAsync(query, Token);
        Assert.Equal(expectedIds, page.Items.Select(job => job.Id));
        Assert.Equal(expectedTotal, page.Total);
    }

    /// <summary>The job's state events reduced to the state names ("state" or "state: reason").</summary>
    private async Task<List<string>> StateStoryAsync(IJobQueue queue, string id)
    {
        var events = await queue.ReadEventsAsync(id, 0, 1000, Token);
        return [.. events.Where(e => e.Kind == JobEventKind.State).Select(e => e.Message.Split(':')[0])];
    }

    private static JobResult SampleResult(int exitCode) => new()
    {
        Findings = [new Finding("high", "no-secrets", "src/app.cs", 12, "hard-coded token")],
        HealthScore = 85,
        ExitCode = exitCode,
        Summary = "one finding",
        DurationSeconds = 1.5,
    };

    private static void AssertResultEqual(JobResult expected, JobResult? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Findings, actual.Findings);
        Assert.Equal(
            (expected.HealthScore, expected.ExitCode, expected.Summary, expected.FindingsTruncated, expected.DurationSeconds),
            (actual.HealthScore, actual.ExitCode, actual.Summary, actual.FindingsTruncated, actual.DurationSeconds));
    }
}
