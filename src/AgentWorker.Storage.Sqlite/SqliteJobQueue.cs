using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// The embedded queue backend: one SQLite file in WAL mode, shared by any number of threads and by
/// several processes on one machine. Every change runs in an immediate transaction, so a job is claimed
/// by one worker at a time even across processes.
/// </summary>
public sealed partial class SqliteJobQueue : IJobQueue
{
    private readonly SqliteDatabase database;
    private readonly QueueOptions options;
    private readonly TimeProvider timeProvider;
    private readonly LeaseWaiter waiter;

    // This instance's live leases by job id: a cancel reaches the worker at once instead of at its next renewal.
    private readonly ConcurrentDictionary<string, SqliteJobLease> leases = new(StringComparer.Ordinal);

    /// <summary>How many leases of this instance a cancel can reach now.</summary>
    internal int LiveLeases => leases.Count;

    // Never disposed: a waiter may still be linking to it while the queue is being disposed.
    private readonly CancellationTokenSource disposing = new();
    private int disposed;

    private SqliteJobQueue(SqliteDatabase database, QueueOptions options, TimeProvider timeProvider)
    {
        this.database = database;
        this.options = options;
        this.timeProvider = timeProvider;
        waiter = new LeaseWaiter(options, timeProvider);
    }

    /// <summary>
    /// Opens (creating it and its directory if needed) the queue database at <paramref name="databasePath"/>
    /// and brings its schema up to date.
    /// </summary>
    public static async Task<SqliteJobQueue> OpenAsync(string databasePath, QueueOptions options, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(databasePath);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        var database = await SqliteDatabase.OpenAsync(databasePath, timeProvider, cancellationToken).ConfigureAwait(false);
        return new SqliteJobQueue(database, options, timeProvider);
    }

    /// <inheritdoc/>
    public string Backend => "sqlite";

    /// <inheritdoc/>
    /// <remarks>
    /// The embedded database has no server to lose; its outage is a full disk under the data directory
    /// (SQLITE_FULL): writes fail until space is freed, and the same call then succeeds.
    /// </remarks>
    public bool IsUnavailable(Exception exception) => exception is SqliteException { SqliteErrorCode: SQLitePCL.raw.SQLITE_FULL };

    internal SqliteDatabase Database => database;

    /// <inheritdoc/>
    public async Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentException.ThrowIfNullOrEmpty(job.Id, nameof(job));
        var now = timeProvider.GetUtcNow();
        (string Name, object? Value)[] row =
        [
            ("$id", job.Id),
            ("$agent", job.Agent),
            ("$priority", job.Priority),
            ("$run_at", Ms(job.RunAt ?? now)),
            ("$max_attempts", job.MaxAttempts),
            ("$spec", JsonSerializer.Serialize(job, Json)),
            ("$now", Ms(now)),
        ];
        var result = await database.WriteAsync(
            session =>
            {
                var inserted = session.Query(
                    $"""
                    INSERT INTO jobs (id, agent, state, priority, run_at, max_attempts, spec, created_at, updated_at)
                    VALUES ($id, $agent, 'queued', $priority, $run_at, $max_attempts, $spec, $now, $now)
                    ON CONFLICT (id) DO NOTHING
                    RETURNING {JobColumns}
                    """,
                    row,
                    ReadJob);
                if (inserted.Count == 0)
                    return new EnqueueResult(ReadJob(session, job.Id) ?? throw new UnreachableException(), Created: false);
                AppendState(session, job.Id, 0, JobState.Queued, null, now);
                // A new job has no attempts yet.
                return new EnqueueResult(inserted[0], Created: true);
            },
            cancellationToken).ConfigureAwait(false);
        if (result.Created)
            waiter.Wake();
        return result;
    }

    /// <inheritdoc/>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        return ReadJob(session, id);
    }

    /// <inheritdoc/>
    public async Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfNegative(query.Limit, nameof(query));
        ArgumentOutOfRangeException.ThrowIfNegative(query.Offset, nameof(query));
        // Only the filters in use go into the WHERE clause, so the state and agent indexes apply.
        var conditions = new List<string>();
        var parameters = new List<(string Name, object? Value)>();
        if (query.State is { } state)
        {
            conditions.Add("state = $state");
            parameters.Add(("$state", state.Name()));
        }
        if (query.Agent is { } agent)
        {
            conditions.Add("agent = $agent");
            parameters.Add(("$agent", agent));
        }
        if (query.Repo is { } repo)
        {
            conditions.Add("instr(json_extract(spec, '$.repo.url'), $repo) > 0");
            parameters.Add(("$repo", repo));
        }
        var where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);

        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        var total = session.Scalar<long>($"SELECT count(*) FROM jobs {where}", parameters);
        var items = ReadJobs(
            session,
            $"SELECT {JobColumns} FROM jobs {where} ORDER BY seq DESC LIMIT $limit OFFSET $offset",
            [.. parameters, ("$limit", query.Limit), ("$offset", query.Offset)]);
        return new JobPage(items, total);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        return ReadJobs(
            session,
            $"SELECT {JobColumns} FROM jobs INDEXED BY jobs_runnable WHERE {Runnable} {LeaseOrder} LIMIT $count",
            [("$now", Ms(timeProvider.GetUtcNow())), ("$count", count)]);
    }

    /// <inheritdoc/>
    public async Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        var rows = session.Query(
            "SELECT state, count(*) FROM jobs GROUP BY state",
            [],
            reader => (State: ParseState(reader.GetString(0)), Count: reader.GetInt64(1)));
        var counts = rows.ToDictionary(row => row.State, row => row.Count);
        return QueueStats.From(counts);
    }

    /// <inheritdoc/>
    public async Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var outcome = await database.WriteAsync(
            session =>
            {
                var rows = session.Query(
                    "SELECT state, attempts FROM jobs WHERE id = $id",
                    [("$id", id)],
                    reader => (State: ParseState(reader.GetString(0)), Attempts: reader.GetInt32(1)));
                if (rows.Count == 0)
                    return CancelOutcome.NotFound;
                var (state, attempts) = rows[0];
                if (state.IsTerminal())
                    return CancelOutcome.AlreadyFinished;
                if (state != JobState.Running)
                {
                    session.Execute(
                        "UPDATE jobs SET state = 'cancelled', error = $reason, finished_at = $now, updated_at = $now WHERE id = $id",
                        [("$id", id), ("$reason", reason), ("$now", Ms(now))]);
                    AppendState(session, id, attempts, JobState.Cancelled, reason, now);
                    return CancelOutcome.Cancelled;
                }
                // Running: only the worker can stop the agent. Workers of other processes see the flag on their next renewal.
                session.Execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = $now WHERE id = $id",
                    [("$id", id), ("$now", Ms(now))]);
                InsertEvent(session, id, attempts, now, new NewJobEvent(JobEventKind.Log, $"cancel requested: {reason}"));
                return CancelOutcome.CancelRequested;
            },
            cancellationToken).ConfigureAwait(false);
        // A lease of this process was registered inside the group that claimed it, so it is here by now.
        if (outcome == CancelOutcome.CancelRequested && leases.TryGetValue(id, out var lease))
            lease.RequestCancel();
        return outcome;
    }

    /// <inheritdoc/>
    public async Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var outcome = await database.WriteAsync(
            session =>
            {
                var name = session.Scalar<string>("SELECT state FROM jobs WHERE id = $id", [("$id", id)]);
                if (name is null)
                    return RetryOutcome.NotFound;
                var state = ParseState(name);
                if (state == JobState.Succeeded)
                    return RetryOutcome.AlreadySucceeded;
                if (!state.IsTerminal())
                    return RetryOutcome.NotFinished;
                session.Execute(
                    """
                    UPDATE jobs SET state = 'queued', attempts = 0, run_at = $now, error = NULL, result = NULL,
                        finished_at = NULL, cancel_requested = 0, updated_at = $now
                    WHERE id = $id
                    """,
                    [("$id", id), ("$now", Ms(now))]);
                AppendState(session, id, 0, JobState.Queued, "manual retry", now);
                return RetryOutcome.Requeued;
            },
            cancellationToken).ConfigureAwait(false);
        if (outcome == RetryOutcome.Requeued)
            waiter.Wake();
        return outcome;
    }

    /// <inheritdoc/>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var recovered = await database.WriteAsync(session => RecoverExpired(session, now), cancellationToken).ConfigureAwait(false);
        if (recovered > 0)
            waiter.WakeAll();
        return recovered;
    }

    /// <inheritdoc/>
    public async Task AppendEventsAsync(string jobId, int attempt, IReadOnlyList<NewJobEvent> events, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
            return;
        var now = timeProvider.GetUtcNow();
        await database.WriteAsync(
            session =>
            {
                // Checked here rather than left to the foreign key, whose error would not name the job.
                if (session.Scalar<long>("SELECT 1 FROM jobs WHERE id = $id", [("$id", jobId)]) == 0)
                    throw new KeyNotFoundException($"job {jobId}: cannot append events, no such job");
                foreach (var jobEvent in events)
                    InsertEvent(session, jobId, attempt, now, jobEvent);
                return true;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        return session.Query(
            """
            SELECT seq, job_id, attempt, at, kind, message, stream
            FROM job_events
            WHERE job_id = $job_id AND seq > $after
            ORDER BY seq
            LIMIT $limit
            """,
            [("$job_id", jobId), ("$after", afterSeq), ("$limit", limit)],
            ReadEvent);
    }

    /// <inheritdoc/>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        using var session = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        session.Scalar<long>("SELECT max(version) FROM schema_version", []);
    }

    /// <summary>Wakes every waiting <see cref="LeaseAsync"/> with an <see cref="OperationCanceledException"/> and closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
            return;
        await disposing.CancelAsync().ConfigureAwait(false);
        database.Close();
    }
}
