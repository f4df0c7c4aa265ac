using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Storage.ContractTests;
using AgentWorker.Testing;
using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite.Tests;

/// <summary>The queue contract on a temporary SQLite file per queue, plus what only SQLite has: pragmas, schema, durability.</summary>
public sealed class SqliteJobQueueTests : JobQueueContractTests
{
    // A directory that does not exist yet, so every test also covers OpenAsync creating it.
    private readonly string directory = Path.Combine(Path.GetTempPath(), "agent-worker-tests", Guid.NewGuid().ToString("N"), "data");
    private readonly Dictionary<IJobQueue, string> paths = [];

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        var root = Path.GetDirectoryName(directory)!;
        if (Directory.Exists(root))
            Directory.Delete(root, recursive: true);
    }

    // Processes sharing the file have no channel between them: a waiter finds another process's jobs on its next poll.
    protected override bool WakesOtherClients => false;

    protected override async Task<IJobQueue> CreateQueueAsync(QueueOptions options, TimeProvider timeProvider)
    {
        var path = Path.Combine(directory, $"queue-{paths.Count}.db");
        var queue = await SqliteJobQueue.OpenAsync(path, options, timeProvider, Token);
        paths[queue] = path;
        return queue;
    }

    protected override async Task<IJobQueue> CreateSecondClientAsync(IJobQueue first, QueueOptions options, TimeProvider timeProvider)
    {
        var path = paths[first];
        var queue = await SqliteJobQueue.OpenAsync(path, options, timeProvider, Token);
        paths[queue] = path;
        return queue;
    }

    [Fact]
    public async Task OpenAsync_NewFile_ConnectionsUseWalFullSyncForeignKeysAndBusyTimeout()
    {
        await using var queue = await OpenSqliteAsync(NewPath());
        await using var connection = await queue.Database.OpenConnectionAsync(Token);

        Assert.Equal("wal", await PragmaAsync<string>(connection, "journal_mode"));
        Assert.Equal(2L, await PragmaAsync<long>(connection, "synchronous"));
        Assert.Equal(1L, await PragmaAsync<long>(connection, "foreign_keys"));
        Assert.True(await PragmaAsync<long>(connection, "busy_timeout") > 0);
        Assert.Equal("sqlite", queue.Backend);
    }

    [Fact]
    public async Task OpenAsync_ManyOpenersOfOneFreshFileAtOnce_AllOpenIt()
    {
        // Workers and CLI commands started together on a new data dir all create the file, switch it to WAL and migrate it.
        for (var round = 0; round < 10; round++)
        {
            var path = NewPath();
            var opening = Enumerable.Range(0, 6).Select(_ => Task.Run(() => OpenSqliteAsync(path))).ToList();
            var queues = await Task.WhenAll(opening);
            foreach (var queue in queues)
                await queue.DisposeAsync();
        }
    }

    [Fact]
    public async Task OpenAsync_ExistingFile_KeepsJobsHistoryAndEventsAcrossReopen()
    {
        var path = NewPath();
        var time = NewFakeTime();
        JobRecord before;
        IReadOnlyList<JobEvent> eventsBefore;
        await using (var queue = await OpenSqliteAsync(path, time))
        {
            await queue.EnqueueAsync(Spec("job-1"), Token);
            var lease = await LeaseExpectedAsync(queue);
            await queue.AppendEventsAsync("job-1", lease.Attempt, [new(JobEventKind.Log, "cloning", "stdout")], Token);
            await lease.FailAsync(new JobFailure(FailureKind.Error, "boom", ExitCode: 7), Token);
            before = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
            eventsBefore = await queue.ReadEventsAsync("job-1", 0, 100, Token);
        }

        await using var reopened = await OpenSqliteAsync(path, time);

        var after = await reopened.GetAsync("job-1", Token);
        Assert.NotNull(after);
        Assert.Equal(before.AttemptHistory, after.AttemptHistory);
        Assert.Equal(before with { AttemptHistory = after.AttemptHistory }, after);
        Assert.Equal(eventsBefore, await reopened.ReadEventsAsync("job-1", 0, 100, Token));
        Assert.Equal([1L], await SchemaVersionsAsync(reopened));
    }

    [Fact]
    public async Task OpenAsync_SchemaNewerThanBuild_Throws()
    {
        var path = NewPath();
        await using (var queue = await OpenSqliteAsync(path))
        {
            await using var connection = await queue.Database.OpenConnectionAsync(Token);
            await using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO schema_version (version, applied_at) VALUES (999, 0)";
            await command.ExecuteNonQueryAsync(Token);
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => OpenSqliteAsync(path));

        Assert.Contains("999", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiskFull_WritesFailAsUnavailable_AndSucceedOnceSpaceIsBack()
    {
        using var disk = TmpfsMount.Create(megabytes: 4);
        await using var queue = await OpenSqliteAsync(disk.Combine("queue.db"));
        await queue.EnqueueAsync(Spec("before"), Token);
        disk.Fill();

        // Several tries: a write may still fit in a page the WAL already has.
        Exception? full = null;
        for (var n = 0; n < 20 && full is null; n++)
            full = await Record.ExceptionAsync(() => queue.EnqueueAsync(Spec($"while-full-{n}"), Token));

        Assert.NotNull(full);
        Assert.True(queue.IsUnavailable(full), $"not an outage: {full}");
        Assert.Contains("disk is full", full.Message, StringComparison.Ordinal);
        Assert.False(queue.IsUnavailable(new SqliteException("constraint", SQLitePCL.raw.SQLITE_CONSTRAINT)));
        disk.Free();
        Assert.True((await queue.EnqueueAsync(Spec("after"), Token)).Created);
        Assert.NotNull(await queue.GetAsync("before", Token));
    }

    [Fact]
    public async Task WriteAsync_OneWriteOfAGroupThrows_OnlyItIsUndoneAndTheOthersAreAnsweredAfterTheirCommit()
    {
        await using var queue = await OpenSqliteAsync(NewPath());
        var database = queue.Database;
        // The next three writes queue up behind the held one and commit as the next group.
        var commitHeld = await HoldWriterAsync(database);

        var runsOfOne = 0;
        var runsOfThree = 0;
        var one = database.WriteAsync(
            session =>
            {
                runsOfOne++;
                return session.Execute("INSERT INTO t VALUES (1)", []);
            },
            Token);
        var two = database.WriteAsync<int>(
            session =>
            {
                session.Execute("INSERT INTO t VALUES (2)", []);
                throw new InvalidOperationException("boom");
            },
            Token);
        var three = database.WriteAsync(
            session =>
            {
                runsOfThree++;
                return session.Execute("INSERT INTO t VALUES (3)", []);
            },
            Token);
        Assert.False(one.IsCompleted || three.IsCompleted, "answered before the group holding them committed");
        await commitHeld();

        Assert.Equal(1, await one);
        // Answered only once committed: another connection, which sees committed rows only, sees the row.
        Assert.Contains(1L, await ValuesAsync(queue));
        Assert.Equal("boom", (await Assert.ThrowsAsync<InvalidOperationException>(() => two)).Message);
        Assert.Equal(1, await three);
        Assert.Equal([1L, 3L], await ValuesAsync(queue));
        // The group ran without savepoints until "two" threw, then again with one around each write: "one" ran twice, its
        // row is stored once.
        Assert.Equal((2, 1), (runsOfOne, runsOfThree));
    }

    [Fact]
    public async Task WriteAsync_GroupWithoutErrors_RunsEachWriteOnce()
    {
        await using var queue = await OpenSqliteAsync(NewPath());
        var database = queue.Database;
        var commitHeld = await HoldWriterAsync(database);
        var runs = new int[5];

        var writes = Enumerable.Range(0, runs.Length).Select(i => database.WriteAsync(
            session =>
            {
                runs[i]++;
                return session.Execute("INSERT INTO t VALUES ($x)", [("$x", i)]);
            },
            Token)).ToArray();
        await commitHeld();

        Assert.All(await Task.WhenAll(writes), inserted => Assert.Equal(1, inserted));
        Assert.All(runs, count => Assert.Equal(1, count));
        Assert.Equal([0L, 1L, 2L, 3L, 4L], await ValuesAsync(queue));
    }

    [Fact]
    public async Task LeaseAsync_InAGroupRunAgainBecauseAnotherWriteThrew_ClaimsOnceAndTheLeaseIsTheLiveOne()
    {
        await using var queue = await OpenSqliteAsync(NewPath());
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var commitHeld = await HoldWriterAsync(queue.Database);

        // The claim is queued first, then a write that throws: the group's first run claims the job and is rolled back.
        var leasing = queue.LeaseAsync("w1", TimeSpan.FromMinutes(1), Token);
        var failing = queue.Database.WriteAsync<int>(_ => throw new InvalidOperationException("boom"), Token);
        await commitHeld();

        await using var lease = await leasing;
        Assert.NotNull(lease);
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing);
        Assert.Equal(1, lease.Attempt);
        Assert.Single(lease.Job.AttemptHistory);
        var stored = await queue.GetAsync("job-1", Token);
        Assert.Equal((JobState.Running, 1), (stored!.State, stored.Attempts));
        Assert.Single(stored.AttemptHistory);
        // A cancel reaches the lease the caller holds, not one left over from the first run.
        Assert.Equal(CancelOutcome.CancelRequested, await queue.CancelAsync("job-1", "by user", Token));
        Assert.True(lease.CancelRequested.IsCancellationRequested);
        await lease.CompleteAsync(new(), Token);
        Assert.Equal(JobState.Succeeded, (await queue.GetAsync("job-1", Token))!.State);
    }

    [Fact]
    public async Task WriteAsync_CancelledWhileQueued_NeverRuns()
    {
        await using var queue = await OpenSqliteAsync(NewPath());
        var database = queue.Database;
        var commitHeld = await HoldWriterAsync(database);
        using var cancel = new CancellationTokenSource();

        var cancelled = database.WriteAsync(session => session.Execute("INSERT INTO t VALUES (1)", []), cancel.Token);
        await cancel.CancelAsync();
        await commitHeld();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Empty(await ValuesAsync(queue));
    }

    /// <summary>
    /// Holds the writer inside one group (the one creating table <c>t</c>), so writes made meanwhile wait behind it; the
    /// returned call lets that group commit and waits for it.
    /// </summary>
    private async Task<Func<Task>> HoldWriterAsync(SqliteDatabase database)
    {
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new ManualResetEventSlim();
        var holding = Task.Run(() => database.WriteAsync(
            session =>
            {
                session.Execute("CREATE TABLE t (x INTEGER)", []);
                held.SetResult();
                release.Wait(Token);
                return 0;
            },
            Token));
        await held.Task.WaitAsync(Token);
        return async () =>
        {
            release.Set();
            await holding;
            release.Dispose();
        };
    }

    private string NewPath() => Path.Combine(directory, $"{Guid.NewGuid():N}.db");

    private Task<SqliteJobQueue> OpenSqliteAsync(string path, TimeProvider? timeProvider = null) =>
        SqliteJobQueue.OpenAsync(path, Options, timeProvider ?? TimeProvider.System, Token);

    private async Task<T?> PragmaAsync<T>(SqliteConnection connection, string name)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA {name}";
        return (T?)await command.ExecuteScalarAsync(Token);
    }

    private async Task<List<long>> ValuesAsync(SqliteJobQueue queue)
    {
        using var session = await queue.Database.ReadAsync(Token);
        return session.Query("SELECT x FROM t ORDER BY x", [], reader => reader.GetInt64(0));
    }

    private async Task<List<long>> SchemaVersionsAsync(SqliteJobQueue queue)
    {
        await using var connection = await queue.Database.OpenConnectionAsync(Token);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT version FROM schema_version ORDER BY version";
        await using var reader = await command.ExecuteReaderAsync(Token);
        var versions = new List<long>();
        while (await reader.ReadAsync(Token))
            versions.Add(reader.GetInt64(0));
        return versions;
    }
}
