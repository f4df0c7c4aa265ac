using System.Collections.Concurrent;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;
using AgentWorker.Testing;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace AgentWorker.Storage.Postgres.Tests;

/// <summary>What only the PostgreSQL backend has: migrations under concurrency, LISTEN/NOTIFY between instances, SKIP LOCKED claims.</summary>
public sealed class PostgresJobQueueTests : IAsyncLifetime
{
    // Far above any healthy latency, far below LongWait: returning within it proves a wait was cut short.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan LongWait = TimeSpan.FromMinutes(2);

    // A poll interval as long as the waits: only a notification can end a wait early.
    private static readonly QueueOptions NoPolling = new() { PollInterval = LongWait };

    private readonly string schema = PostgresServer.NewSchemaName();
    private readonly List<string> extraSchemas = [];
    private readonly List<PostgresJobQueue> queues = [];
    private readonly CancellationTokenSource timeout = new(TimeSpan.FromMinutes(1));

    private CancellationToken Token => timeout.Token;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var queue in queues)
            await queue.DisposeAsync();
        foreach (var name in extraSchemas.Append(schema))
            await PostgresServer.DropSchemaAsync(name);
        timeout.Dispose();
    }

    [Fact]
    public async Task OpenAsync_SeveralInstancesAtOnce_MigrateOnceAndAllWork()
    {
        // Several rounds on fresh schemas: one race of eight openers does not reliably collide.
        for (var round = 0; round < 5; round++)
        {
            var roundSchema = $"{schema}_{round}";
            extraSchemas.Add(roundSchema);
            var opened = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => OpenAsync(schema: roundSchema)));

            Assert.Equal([1], await SchemaVersionsAsync(roundSchema));
            Assert.All(opened, queue => Assert.Equal("postgres", queue.Backend));
            await opened[0].EnqueueAsync(Spec("job-1"), Token);
            Assert.Equal("job-1", (await opened[^1].LeaseAsync("w1", TimeSpan.Zero, Token))?.Job.Id);
        }
    }

    [Fact]
    public async Task OpenAsync_ExistingSchema_KeepsJobsAndDoesNotMigrateAgain()
    {
        await using (var first = await PostgresJobQueue.OpenAsync(PostgresServer.Url, schema, NoPolling, TimeProvider.System, Token))
            await first.EnqueueAsync(Spec("job-1"), Token);

        var reopened = await OpenAsync();

        Assert.Equal(JobState.Queued, (await reopened.GetAsync("job-1", Token))?.State);
        Assert.Equal([1], await SchemaVersionsAsync());
        await reopened.PingAsync(Token);
    }

    [Fact]
    public async Task OpenAsync_SchemaNewerThanBuild_ThrowsNamingVersion()
    {
        await OpenAsync();
        await PostgresServer.ScalarAsync<object>($"""INSERT INTO "{schema}".schema_version (version, applied_at) VALUES (999, now())""");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => OpenAsync());

        Assert.Contains("999", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Upper")]
    [InlineData("1starts_with_digit")]
    [InlineData("quote\"d")]
    public async Task OpenAsync_UnsafeSchemaName_ThrowsArgumentException(string name)
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => PostgresJobQueue.OpenAsync(PostgresServer.Url, name, NoPolling, TimeProvider.System, Token));
    }

    [Fact]
    public async Task LeaseAsync_EnqueuedByOtherInstance_WakesWaiterThroughNotify()
    {
        var time = new SleepWatchingTimeProvider();
        var waiter = await OpenAsync(time);
        var producer = await OpenAsync();
        var asleep = time.NextSleep;
        var leasing = waiter.LeaseAsync("w1", LongWait, Token);
        await asleep.WaitAsync(Prompt, Token);

        await producer.EnqueueAsync(Spec("job-1"), Token);

        Assert.Equal("job-1", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_RetryByOtherInstance_WakesWaiterThroughNotify()
    {
        var time = new SleepWatchingTimeProvider();
        var waiter = await OpenAsync(time);
        var other = await OpenAsync();
        await other.EnqueueAsync(Spec("job-1", maxAttempts: 1), Token);
        var lease = await other.LeaseAsync("w2", TimeSpan.Zero, Token) ?? throw new InvalidOperationException("expected a job");
        await lease.FailAsync(new JobFailure(FailureKind.Error, "boom"), Token);
        var asleep = time.NextSleep;
        var leasing = waiter.LeaseAsync("w1", LongWait, Token);
        await asleep.WaitAsync(Prompt, Token);

        Assert.Equal(RetryOutcome.Requeued, await other.RetryAsync("job-1", Token));

        Assert.Equal("job-1", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task CancelAsync_FromOtherInstance_FiresLeaseTokenWithoutRenewal()
    {
        var worker = await OpenAsync();
        var api = await OpenAsync();
        await api.EnqueueAsync(Spec("job-1"), Token);
        var lease = await worker.LeaseAsync("w1", TimeSpan.Zero, Token) ?? throw new InvalidOperationException("expected a job");
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = lease.CancelRequested.Register(cancelled.SetResult);

        Assert.Equal(CancelOutcome.CancelRequested, await api.CancelAsync("job-1", "by user", Token));

        await cancelled.Task.WaitAsync(Prompt, Token);
        Assert.Equal(JobState.Cancelled, await lease.FailAsync(new JobFailure(FailureKind.Cancelled, "cancelled"), Token));
    }

    [Fact]
    public async Task LeaseAsync_ListenerConnectionKilled_ReconnectsAndStillWakes()
    {
        const string application = "agent-worker-listener-test";
        var settings = PostgresConnectionString.Parse(PostgresServer.Url);
        settings.ApplicationName = application;
        var time = new SleepWatchingTimeProvider();
        var waiter = await PostgresJobQueue.OpenAsync(settings.ConnectionString, schema, NoPolling, time, Token);
        queues.Add(waiter);
        var producer = await OpenAsync();
        var listener = $"""
            SELECT pid FROM pg_stat_activity
            WHERE application_name = '{application}' AND query LIKE 'LISTEN "{schema}:jobs"%'
            """;
        var killed = await PostgresServer.ScalarAsync<int>(listener);
        Assert.True(await PostgresServer.ScalarAsync<bool>($"SELECT pg_terminate_backend({killed})"));
        // The killed backend lingers in pg_stat_activity for a moment; a new pid means the listener is back.
        await Eventually.UntilAsync(
            () => PostgresServer.ScalarAsync<int?>($"{listener} AND pid <> {killed}"), pid => pid is not null, Prompt, "listener reconnected");
        var asleep = time.NextSleep;
        var leasing = waiter.LeaseAsync("w1", LongWait, Token);
        await asleep.WaitAsync(Prompt, Token);

        await producer.EnqueueAsync(Spec("job-1"), Token);

        Assert.Equal("job-1", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_FirstJobRowLockedElsewhere_SkipsItInsteadOfWaiting()
    {
        var queue = await OpenAsync();
        await queue.EnqueueAsync(Spec("first", priority: 1), Token);
        await queue.EnqueueAsync(Spec("second"), Token);
        await using var connection = new NpgsqlConnection(PostgresConnectionString.Parse(PostgresServer.Url).ConnectionString);
        await connection.OpenAsync(Token);
        await using var transaction = await connection.BeginTransactionAsync(Token);
        await using (var command = new NpgsqlCommand($"""SELECT id FROM "{schema}".jobs WHERE id = 'first' FOR UPDATE""", connection, transaction))
            await command.ExecuteScalarAsync(Token);

        // Without SKIP LOCKED this claim would block on the lock held above until the deadline.
        var lease = await queue.LeaseAsync("w1", TimeSpan.Zero, Token).WaitAsync(Prompt, Token);

        Assert.Equal("second", lease?.Job.Id);
        await transaction.RollbackAsync(Token);
        Assert.Equal("first", (await queue.LeaseAsync("w1", TimeSpan.Zero, Token))?.Job.Id);
    }

    [Fact]
    public async Task LeaseAsync_ManyLeasersOnTwoInstances_EachJobClaimedOnceWithOneAttempt()
    {
        var first = await OpenAsync();
        var second = await OpenAsync();
        var ids = Enumerable.Range(1, 400).Select(n => $"job-{n:D3}").ToList();
        foreach (var id in ids)
            await first.EnqueueAsync(Spec(id), Token);
        var leased = new ConcurrentBag<(string Id, int Attempt)>();

        await Task.WhenAll(new[] { first, second }
            .SelectMany(queue => Enumerable.Range(0, 20).Select(n => (Queue: queue, Worker: $"w{n}")))
            .Select(leaser => Task.Run(async () =>
            {
                while (await leaser.Queue.LeaseAsync(leaser.Worker, TimeSpan.Zero, Token) is { } lease)
                {
                    leased.Add((lease.Job.Id, lease.Attempt));
                    await lease.CompleteAsync(new JobResult(), Token);
                }
            })));

        Assert.Equal(ids, leased.Select(l => l.Id).Order());
        Assert.All(leased, l => Assert.Equal(1, l.Attempt));
        Assert.Equal(400, (await second.GetStatsAsync(Token)).Succeeded);
    }

    [Fact]
    public async Task LeaseAsync_ClockWithSubMicrosecondTicks_LeasedRecordEqualsStoredRecord()
    {
        // Real clocks have sub-microsecond ticks, which timestamptz does not keep; the lease must not show them either.
        var queue = await OpenAsync(new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(7)));
        await queue.EnqueueAsync(Spec("job-1"), Token);

        var lease = await queue.LeaseAsync("w1", TimeSpan.Zero, Token) ?? throw new InvalidOperationException("expected a job");

        var stored = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
        Assert.Equal(stored.AttemptHistory, lease.Job.AttemptHistory);
        Assert.Equal(stored with { AttemptHistory = [] }, lease.Job with { AttemptHistory = [] });
    }

    [Fact]
    public async Task AppendEventsAsync_JobRowLockedByAnotherWriter_WaitsForItsCommit()
    {
        const string application = "agent-worker-append-test";
        var settings = PostgresConnectionString.Parse(PostgresServer.Url);
        settings.ApplicationName = application;
        var queue = await PostgresJobQueue.OpenAsync(settings.ConnectionString, schema, NoPolling, TimeProvider.System, Token);
        queues.Add(queue);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        await using var connection = new NpgsqlConnection(PostgresConnectionString.Parse(PostgresServer.Url).ConnectionString);
        await connection.OpenAsync(Token);
        await using var transaction = await connection.BeginTransactionAsync(Token);
        // Stands for a state change in flight: it holds the job row and has taken its event seq.
        await using (var command = new NpgsqlCommand(
            $"""
            UPDATE "{schema}".jobs SET updated_at = updated_at WHERE id = 'job-1';
            INSERT INTO "{schema}".job_events (job_id, attempt, at, kind, message) VALUES ('job-1', 0, now(), 'state', 'in flight');
            """,
            connection,
            transaction))
            await command.ExecuteNonQueryAsync(Token);

        var appending = queue.AppendEventsAsync("job-1", 0, [new(JobEventKind.Log, "appended")], Token);
        await Eventually.UntilAsync(
            () => PostgresServer.ScalarAsync<long>(
                $"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' AND wait_event_type = 'Lock'"),
            n => n == 1,
            Prompt,
            "append waiting for the row lock");
        Assert.False(appending.IsCompleted);
        await transaction.CommitAsync(Token);
        await appending.WaitAsync(Prompt, Token);

        var events = await queue.ReadEventsAsync("job-1", 0, 100, Token);
        Assert.Equal(["queued", "in flight", "appended"], events.Select(e => e.Message));
    }

    [Fact]
    public async Task AppendEventsAsync_UnknownJob_ThrowsKeyNotFoundNamingJob()
    {
        var queue = await OpenAsync();

        var error = await Assert.ThrowsAsync<KeyNotFoundException>(
            () => queue.AppendEventsAsync("missing", 0, [new(JobEventKind.Log, "x")], Token));

        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
    }

    private async Task<PostgresJobQueue> OpenAsync(TimeProvider? timeProvider = null, string? schema = null)
    {
        var queue = await PostgresJobQueue.OpenAsync(PostgresServer.Url, schema ?? this.schema, NoPolling, timeProvider ?? TimeProvider.System, Token);
        lock (queues)
            queues.Add(queue);
        return queue;
    }

    private async Task<List<int>> SchemaVersionsAsync(string? schema = null)
    {
        var versions = await PostgresServer.ScalarAsync<int[]>($"""SELECT array_agg(version ORDER BY version) FROM "{schema ?? this.schema}".schema_version""");
        return [.. versions ?? []];
    }

    private static JobSpec Spec(string id, int priority = 0, int maxAttempts = 3) => new()
    {
        Id = id,
        Agent = "ssot_auditor",
        Repo = new RepoRef("https://example.test/repo.git"),
        Priority = priority,
        MaxAttempts = maxAttempts,
    };
}
