using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sinks;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Core.Tests.Sinks;

public sealed class JobNotifierTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private readonly EventLogQueue _queue = new();
    private readonly List<JobNotifier> _notifiers = [];

    private JobNotifier Notifier(IJobSink sink, SinkOptions? options = null)
    {
        var notifier = new JobNotifier(_queue, [sink], options ?? new SinkOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(1) }, TimeProvider.System, NullLogger<JobNotifier>.Instance);
        _notifiers.Add(notifier);
        return notifier;
    }

    private static JobRecord Job(JobState state, string id = "job-1") => new()
    {
        Spec = new JobSpec { Id = id, Repo = new RepoRef("/r") },
        State = state,
        Attempts = 1,
        CreatedAt = DateTimeOffset.UnixEpoch,
        UpdatedAt = DateTimeOffset.UnixEpoch,
        RunAt = DateTimeOffset.UnixEpoch,
    };

    private IReadOnlyList<DeliveryRecord> Log(string jobId = "job-1") =>
        [.. _queue.Events.Where(e => e.JobId == jobId && e.Kind == JobEventKind.Sink).Select(e => DeliveryRecord.Parse(e.Message)!)];

    private Task<IReadOnlyList<DeliveryRecord>> LogEndingAsync(string outcome, int count = 1) =>
        Eventually.UntilAsync(() => Task.FromResult(Log()), log => log.Count(r => r.Outcome == outcome) >= count, Deadline, $"{count} '{outcome}' line(s) in the delivery log");

    [Fact]
    public async Task Publish_SinkFailingTwice_IsDeliveredOnceAndEveryTryIsLogged()
    {
        var sink = new FakeSink((call, _, _) => call <= 2 ? throw new SinkException("HTTP 503", transient: true) : Task.CompletedTask);

        Notifier(sink).Publish(Job(JobState.Succeeded));
        var log = await LogEndingAsync(DeliveryRecord.Delivered);

        Assert.Equal(3, sink.Calls.Count);
        Assert.Single(sink.Calls.Select(c => c.DeliveryId).Distinct());
        Assert.Equal([(1, "retrying"), (2, "retrying"), (3, "delivered")], log.Select(r => (r.Attempt, r.Outcome)));
        Assert.Equal("HTTP 503", log[0].Error);
        Assert.All(log, r => Assert.Equal(("fake", "job.succeeded"), (r.Sink, r.Event)));
    }

    [Fact]
    public async Task Publish_PermanentFailure_IsNotRetried()
    {
        var sink = new FakeSink((_, _, _) => throw new SinkException("HTTP 404", transient: false));

        Notifier(sink).Publish(Job(JobState.Failed));
        var log = await LogEndingAsync(DeliveryRecord.Failed);

        Assert.Single(sink.Calls);
        Assert.Equal([(1, "failed", "HTTP 404")], log.Select(r => (r.Attempt, r.Outcome, r.Error)));
    }

    [Fact]
    public async Task Publish_AlwaysFailing_GivesUpAfterMaxAttempts()
    {
        var sink = new FakeSink((_, _, _) => throw new HttpRequestException("connection refused"));

        Notifier(sink, new SinkOptions { MaxAttempts = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1) }).Publish(Job(JobState.Dead));
        var log = await LogEndingAsync(DeliveryRecord.Failed);

        Assert.Equal(3, sink.Calls.Count);
        Assert.Equal(["retrying", "retrying", "failed"], log.Select(r => r.Outcome));
    }

    [Fact]
    public async Task Publish_RetryAfter_IsUsedWithinTheLongestDelay()
    {
        var sink = new FakeSink((call, _, _) => call == 1 ? throw new SinkException("HTTP 429", transient: true, TimeSpan.FromHours(1)) : Task.CompletedTask);

        Notifier(sink, new SinkOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(1), MaxRetryDelay = TimeSpan.FromMilliseconds(200) }).Publish(Job(JobState.Running));
        var log = await LogEndingAsync(DeliveryRecord.Delivered);

        Assert.Equal(0.2, log[0].RetryInSeconds);
    }

    [Fact]
    public async Task Publish_StateChangesOfOneJob_ArriveInOrderWhileOtherJobsGoAhead()
    {
        var release = new TaskCompletionSource();
        var sink = new FakeSink(async (_, notice, _) =>
        {
            if (notice.Event == "job.queued" && notice.Job.Id == "job-1")
                await release.Task;
        });
        var notifier = Notifier(sink);

        notifier.Publish(Job(JobState.Queued));
        notifier.Publish(Job(JobState.Running));
        notifier.Publish(Job(JobState.Queued, id: "job-2"));
        await Eventually.UntilAsync(() => sink.Calls.Any(c => c.JobId == "job-2"), Deadline, "job-2 delivered while job-1 waits");
        Assert.DoesNotContain(sink.Calls, c => c.Event == "job.running");
        release.SetResult();
        await LogEndingAsync(DeliveryRecord.Delivered, count: 2);

        Assert.Equal(["job.queued", "job.running"], sink.Calls.Where(c => c.JobId == "job-1").Select(c => c.Event));
    }

    [Fact]
    public async Task Publish_SinkDeclines_GetsNothing()
    {
        var sink = new FakeSink((_, _, _) => Task.CompletedTask) { Wants = n => n.Job.State.IsTerminal() };
        var notifier = Notifier(sink);

        notifier.Publish(Job(JobState.Running));
        notifier.Publish(Job(JobState.Succeeded));
        await LogEndingAsync(DeliveryRecord.Delivered);
        await notifier.DrainAsync(Deadline);

        Assert.Equal(["job.succeeded"], sink.Calls.Select(c => c.Event));
    }

    [Fact]
    public async Task DrainAsync_DeliveryStillHanging_IsAbandonedAndLogged()
    {
        var sink = new FakeSink((_, _, cancellationToken) => Task.Delay(Timeout.Infinite, cancellationToken));
        var notifier = Notifier(sink, new SinkOptions { AttemptTimeout = TimeSpan.FromHours(1) });
        notifier.Publish(Job(JobState.Succeeded));
        await Eventually.UntilAsync(() => sink.Calls.Count == 1, Deadline, "delivery started");

        var abandoned = await notifier.DrainAsync(TimeSpan.FromMilliseconds(100));

        Assert.Equal(1, abandoned);
        Assert.Equal(["abandoned"], (await LogEndingAsync(DeliveryRecord.Abandoned)).Select(r => r.Outcome));
    }

    [Fact]
    public async Task Publish_AttemptTakingTooLong_IsTimedOutAndRetried()
    {
        var sink = new FakeSink((call, _, cancellationToken) => call == 1 ? Task.Delay(Timeout.Infinite, cancellationToken) : Task.CompletedTask);

        Notifier(sink, new SinkOptions { AttemptTimeout = TimeSpan.FromMilliseconds(100), RetryBaseDelay = TimeSpan.FromMilliseconds(1) }).Publish(Job(JobState.Succeeded));
        var log = await LogEndingAsync(DeliveryRecord.Delivered);

        Assert.Equal(["retrying", "delivered"], log.Select(r => r.Outcome));
        Assert.Contains("didn't complete within", log[0].Error, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (var notifier in _notifiers)
            notifier.Dispose();
    }

    private sealed class FakeSink(Func<int, JobNotice, CancellationToken, Task> behaviour) : IJobSink
    {
        private readonly List<(string JobId, string Event, string DeliveryId)> _calls = [];

        public Func<JobNotice, bool> Wants { get; init; } = _ => true;

        public IReadOnlyList<(string JobId, string Event, string DeliveryId)> Calls
        {
            get
            {
                lock (_calls)
                    return [.. _calls];
            }
        }

        public string Name => "fake";

        public bool Accepts(JobNotice notice) => Wants(notice);

        public Task DeliverAsync(JobNotice notice, CancellationToken cancellationToken)
        {
            int call;
            lock (_calls)
            {
                _calls.Add((notice.Job.Id, notice.Event, notice.DeliveryId));
                call = _calls.Count(c => c.DeliveryId == notice.DeliveryId);
            }
            return behaviour(call, notice, cancellationToken);
        }
    }
}
