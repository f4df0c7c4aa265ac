using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using Npgsql;
using NpgsqlTypes;

namespace AgentWorker.Storage.Postgres;

/// <summary>
/// The shared queue backend: any number of worker processes on any number of hosts use one PostgreSQL schema.
/// Jobs are claimed with <c>FOR UPDATE SKIP LOCKED</c>, waiters are woken with <c>LISTEN/NOTIFY</c>, and every
/// time comes from the injected <see cref="TimeProvider"/> (never the server's clock).
/// </summary>
public sealed partial class PostgresJobQueue : IJobQueue
{
    private readonly NpgsqlDataSource dataSource;
    private readonly string channel;
    private readonly QueueOptions options;
    private readonly TimeProvider timeProvider;
    private readonly LeaseWaiter waiter;

    // Concurrent enqueues, leases and completions of this process go to the server together (see Batcher).
    private readonly Batcher<JobSpec, EnqueueResult> enqueues;
    private readonly Batcher<ClaimRequest, (PostgresJobLease? Lease, DateTimeOffset? NextDue)> claims;
    private readonly Batcher<CompleteRequest, bool> completions;

    // The payload of this instance's one-job wake-ups, so its listener can skip them: it woke its waiters already.
    private readonly string wakePayload = PostgresListener.WakePrefix + Guid.NewGuid().ToString("N")[..12];
    private PostgresListener? listener;

    // This instance's live leases by job id: a cancel reaches the worker at once, from this process directly
    // and from other processes through a notification, instead of at the next renewal.
    private readonly ConcurrentDictionary<string, PostgresJobLease> leases = new(StringComparer.Ordinal);

    // Never disposed: a waiter may still be linking to it while the queue is being disposed.
    private readonly CancellationTokenSource disposing = new();
    private int disposed;

    private PostgresJobQueue(NpgsqlDataSource dataSource, string schema, QueueOptions options, TimeProvider timeProvider)
    {
        this.dataSource = dataSource;
        channel = $"{schema}:jobs";
        this.options = options;
        this.timeProvider = timeProvider;
        waiter = new LeaseWaiter(options, timeProvider);
        enqueues = new Batcher<JobSpec, EnqueueResult>(EnqueueBatchAsync);
        claims = new Batcher<ClaimRequest, (PostgresJobLease? Lease, DateTimeOffset? NextDue)>(ClaimBatchAsync);
        completions = new Batcher<CompleteRequest, bool>(CompleteBatchAsync);
    }

    /// <summary>
    /// Connects to <paramref name="connectionString"/> (a <c>postgresql://user:password@host:port/database</c> URL
    /// or Npgsql key=value pairs), brings the queue's tables in <paramref name="schema"/> up to date, and starts
    /// listening for wake-ups from other processes.
    /// </summary>
    public static async Task<PostgresJobQueue> OpenAsync(
        string connectionString,
        string schema,
        QueueOptions options,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        if (!PostgresSchema.IsValidName(schema))
            throw new ArgumentException($"PostgreSQL schema name '{schema}' must be 1-48 lowercase letters, digits or '_', not starting with a digit", nameof(schema));
        var settings = PostgresConnectionString.Parse(connectionString);
        // Tables are named unqualified; the search path puts them in the queue's schema.
        settings.SearchPath = schema;
        // Timestamps inside the JSON attempt history are rendered in the session time zone.
        settings.Timezone = "UTC";
        // The claim, complete and extend statements run thousands of times: prepare them once per connection.
        if (settings.MaxAutoPrepare == 0)
            settings.MaxAutoPrepare = 32;
        // Sessions change no settings (migrations use SET LOCAL), so a connection handed back to the pool needs no reset:
        // resetting costs the server a round of statements per use.
        settings.NoResetOnClose = true;
        // The listening connection is idle for long stretches; keepalives notice a dead server or network.
        if (settings.KeepAlive == 0)
            settings.KeepAlive = 30;
        var dataSource = NpgsqlDataSource.Create(settings);
        try
        {
            await PostgresSchema.MigrateAsync(dataSource, schema, timeProvider, cancellationToken).ConfigureAwait(false);
            var queue = new PostgresJobQueue(dataSource, schema, options, timeProvider);
            queue.listener = await PostgresListener.StartAsync(dataSource, queue.channel, queue.wakePayload, queue.waiter.Wake, queue.waiter.WakeAll, queue.CancelLocalLease, cancellationToken)
                .ConfigureAwait(false);
            return queue;
        }
        catch
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc/>
    public string Backend => "postgres";

    /// <inheritdoc/>
    public async Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentException.ThrowIfNullOrEmpty(job.Id, nameof(job));
        var result = await enqueues.RunAsync(job, cancellationToken).ConfigureAwait(false);
        if (result.Created)
            waiter.Wake();
        return result;
    }

    // The jobs of one batch as arrays, inserted in request order; an id that exists (or comes twice) is skipped. Other
    // processes are told how many became runnable (the payload is the same for every row, so PostgreSQL sends it once).
    private const string Enqueue =
        $"""
        WITH inserted AS (
            INSERT INTO jobs AS j (id, agent, state, priority, run_at, max_attempts, spec, created_at, updated_at)
            SELECT i.id, i.agent, 'queued', i.priority, i.run_at, i.max_attempts, i.spec::jsonb, @now, @now
            FROM unnest(@ids, @agents, @priorities, @run_ats, @max_attempts, @specs) WITH ORDINALITY
                AS i (id, agent, priority, run_at, max_attempts, spec, n)
            ORDER BY i.n
            ON CONFLICT (id) DO NOTHING
            RETURNING {JobColumns}
        ), event AS (
            INSERT INTO job_events (job_id, attempt, at, kind, message) SELECT id, 0, @now, 'state', 'queued' FROM inserted
        )
        SELECT *, pg_notify(@channel, @wake || ':' || count(*) OVER ())::text FROM inserted
        """;

    /// <summary>One statement for a batch of enqueues, then one more read for the ids that existed already.</summary>
    private async Task<IReadOnlyList<EnqueueResult>> EnqueueBatchAsync(IReadOnlyList<JobSpec> jobs)
    {
        var now = timeProvider.GetUtcNow();
        await using var command = dataSource.CreateCommand(Enqueue);
        command.Parameters.Add(ArrayOf("ids", NpgsqlDbType.Text, jobs.Select(j => j.Id)));
        command.Parameters.Add(ArrayOf("agents", NpgsqlDbType.Text, jobs.Select(j => j.Agent)));
        command.Parameters.Add(ArrayOf("priorities", NpgsqlDbType.Integer, jobs.Select(j => j.Priority)));
        command.Parameters.Add(ArrayOf("run_ats", NpgsqlDbType.TimestampTz, jobs.Select(j => (j.RunAt ?? now).ToUniversalTime())));
        command.Parameters.Add(ArrayOf("max_attempts", NpgsqlDbType.Integer, jobs.Select(j => j.MaxAttempts)));
        command.Parameters.Add(ArrayOf("specs", NpgsqlDbType.Text, jobs.Select(j => JsonSerializer.Serialize(j, Json))));
        command.Parameters.Add(Time("now", now));
        command.Parameters.Add(Text("channel", channel));
        command.Parameters.Add(Text("wake", wakePayload));
        var inserted = new Dictionary<string, JobRecord>(StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync().ConfigureAwait(false))
        {
            foreach (var job in await ReadJobsAsync(reader, CancellationToken.None).ConfigureAwait(false))
                inserted[job.Id] = job;
        }

        // The first request for an inserted id created it; any other gets the stored job, read after the insert committed.
        var results = new EnqueueResult?[jobs.Count];
        var existing = new List<int>();
        for (var i = 0; i < jobs.Count; i++)
        {
            if (inserted.Remove(jobs[i].Id, out var created))
                results[i] = new EnqueueResult(created, Created: true);
            else
                existing.Add(i);
        }
        if (existing.Count > 0)
        {
            await using var read = dataSource.CreateCommand($"SELECT {JobColumns} FROM jobs j WHERE j.id = ANY(@ids)");
            read.Parameters.Add(ArrayOf("ids", NpgsqlDbType.Text, existing.Select(i => jobs[i].Id).Distinct()));
            await using var reader = await read.ExecuteReaderAsync().ConfigureAwait(false);
            var stored = (await ReadJobsAsync(reader, CancellationToken.None).ConfigureAwait(false)).ToDictionary(job => job.Id, StringComparer.Ordinal);
            foreach (var i in existing)
            {
                results[i] = new EnqueueResult(
                    stored.GetValueOrDefault(jobs[i].Id) ?? throw new UnreachableException($"job {jobs[i].Id}: conflicting row vanished"),
                    Created: false);
            }
        }
        return [.. results.Select(result => result!)];
    }

    /// <inheritdoc/>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {JobColumns} FROM jobs j WHERE j.id = @id");
        command.Parameters.Add(Text("id", id));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var jobs = await ReadJobsAsync(reader, cancellationToken).ConfigureAwait(false);
        return jobs.Count == 0 ? null : jobs[0];
    }

    /// <inheritdoc/>
    public async Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfNegative(query.Limit, nameof(query));
        ArgumentOutOfRangeException.ThrowIfNegative(query.Offset, nameof(query));
        // Only the filters in use go into the WHERE clause, so the state and agent indexes apply.
        var conditions = new List<string>();
        if (query.State is not null)
            conditions.Add("j.state = @state");
        if (query.Agent is not null)
            conditions.Add("j.agent = @agent");
        if (query.Repo is not null)
            conditions.Add("strpos(j.spec->'repo'->>'url', @repo) > 0");
        var where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
        NpgsqlParameter[] Filters() =>
        [
            .. query.State is { } state ? [Text("state", state.Name())] : Array.Empty<NpgsqlParameter>(),
            .. query.Agent is { } agent ? [Text("agent", agent)] : Array.Empty<NpgsqlParameter>(),
            .. query.Repo is { } repo ? [Text("repo", repo)] : Array.Empty<NpgsqlParameter>(),
        ];

        // Count and page in one round trip.
        await using var batch = dataSource.CreateBatch();
        var count = new NpgsqlBatchCommand($"SELECT count(*) FROM jobs j {where}");
        count.Parameters.AddRange(Filters());
        var page = new NpgsqlBatchCommand($"SELECT {JobColumns} FROM jobs j {where} ORDER BY j.seq DESC LIMIT @limit OFFSET @offset");
        page.Parameters.AddRange(Filters());
        page.Parameters.Add(Integer("limit", query.Limit));
        page.Parameters.Add(Integer("offset", query.Offset));
        batch.BatchCommands.Add(count);
        batch.BatchCommands.Add(page);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var total = reader.GetInt64(0);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        return new JobPage(await ReadJobsAsync(reader, cancellationToken).ConfigureAwait(false), total);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        await using var command = dataSource.CreateCommand($"SELECT {JobColumns} FROM jobs j WHERE {Runnable} {LeaseOrder} LIMIT @count");
        command.Parameters.Add(Time("now", timeProvider.GetUtcNow()));
        command.Parameters.Add(Integer("count", count));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await ReadJobsAsync(reader, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT state, count(*) FROM jobs GROUP BY state");
        var counts = new Dictionary<JobState, long>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                counts[ParseState(reader.GetString(0))] = reader.GetInt64(1);
        }
        return QueueStats.From(counts);
    }

    /// <inheritdoc/>
    public async Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            // The row lock keeps a claim from turning the job running between this look and the update below.
            JobState state;
            int attempts;
            await using (var select = new NpgsqlCommand("SELECT state, attempts FROM jobs WHERE id = @id FOR UPDATE", connection, transaction))
            {
                select.Parameters.Add(Text("id", id));
                await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    return CancelOutcome.NotFound;
                (state, attempts) = (ParseState(reader.GetString(0)), reader.GetInt32(1));
            }
            if (state.IsTerminal())
                return CancelOutcome.AlreadyFinished;
            var running = state == JobState.Running;
            // Running: only the worker can stop the agent; the notification tells whichever process holds the lease.
            await using (var update = new NpgsqlCommand(
                running
                    ? $"""
                      UPDATE jobs SET cancel_requested = true, updated_at = @now WHERE id = @id;
                      INSERT INTO job_events (job_id, attempt, at, kind, message) VALUES (@id, @attempt, @now, 'log', @message);
                      SELECT pg_notify(@channel, '{PostgresListener.CancelPrefix}' || @id);
                      """
                    : """
                      UPDATE jobs SET state = 'cancelled', error = @reason, finished_at = @now, updated_at = @now WHERE id = @id;
                      INSERT INTO job_events (job_id, attempt, at, kind, message) VALUES (@id, @attempt, @now, 'state', @message);
                      """,
                connection,
                transaction))
            {
                update.Parameters.Add(Text("id", id));
                update.Parameters.Add(Text("reason", reason));
                update.Parameters.Add(Time("now", now));
                update.Parameters.Add(Integer("attempt", attempts));
                update.Parameters.Add(Text("message", running ? $"cancel requested: {reason}" : StateMessage(JobState.Cancelled, reason)));
                update.Parameters.Add(Text("channel", channel));
                await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (!running)
                return CancelOutcome.Cancelled;
        }
        CancelLocalLease(id);
        return CancelOutcome.CancelRequested;
    }

    /// <inheritdoc/>
    public async Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            JobState state;
            await using (var select = new NpgsqlCommand("SELECT state FROM jobs WHERE id = @id FOR UPDATE", connection, transaction))
            {
                select.Parameters.Add(Text("id", id));
                if (await select.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not string name)
                    return RetryOutcome.NotFound;
                state = ParseState(name);
            }
            if (state == JobState.Succeeded)
                return RetryOutcome.AlreadySucceeded;
            if (!state.IsTerminal())
                return RetryOutcome.NotFinished;
            await using (var update = new NpgsqlCommand(
                $"""
                UPDATE jobs SET state = 'queued', attempts = 0, run_at = @now, error = NULL, result = NULL,
                    finished_at = NULL, cancel_requested = false, updated_at = @now
                WHERE id = @id;
                INSERT INTO job_events (job_id, attempt, at, kind, message) VALUES (@id, 0, @now, 'state', @message);
                SELECT pg_notify(@channel, @wake);
                """,
                connection,
                transaction))
            {
                update.Parameters.Add(Text("id", id));
                update.Parameters.Add(Time("now", now));
                update.Parameters.Add(Text("message", StateMessage(JobState.Queued, "manual retry")));
                update.Parameters.Add(Text("channel", channel));
                update.Parameters.Add(Text("wake", wakePayload));
                await update.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        WakeWaiters();
        return RetryOutcome.Requeued;
    }

    /// <inheritdoc/>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(RecoverExpired);
        command.Parameters.AddRange(RecoverParameters(timeProvider.GetUtcNow()));
        var recovered = 0;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                recovered++;
        }
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
        // The whole batch as three arrays in one statement: one round trip however many lines a worker flushes.
        // The job row lock makes a job's events commit in seq order (every other writer of its events holds the
        // row too), so a reader following "after seq" never skips an event that committed late.
        await using var command = dataSource.CreateCommand(
            """
            WITH job AS (SELECT id FROM jobs WHERE id = @job_id FOR NO KEY UPDATE)
            INSERT INTO job_events (job_id, attempt, at, kind, message, stream)
            SELECT job.id, @attempt, @now, e.kind, e.message, e.stream
            FROM job, unnest(@kinds, @messages, @streams) WITH ORDINALITY AS e (kind, message, stream, n)
            ORDER BY e.n
            """);
        command.Parameters.Add(Text("job_id", jobId));
        command.Parameters.Add(Integer("attempt", attempt));
        command.Parameters.Add(Time("now", timeProvider.GetUtcNow()));
        command.Parameters.Add(ArrayOf("kinds", NpgsqlDbType.Text, events.Select(e => e.Kind.Name())));
        command.Parameters.Add(ArrayOf("messages", NpgsqlDbType.Text, events.Select(e => e.Message)));
        command.Parameters.Add(ArrayOf("streams", NpgsqlDbType.Text, events.Select(e => e.Stream)));
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            throw new KeyNotFoundException($"job {jobId}: cannot append events, no such job");
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        await using var command = dataSource.CreateCommand(
            """
            SELECT seq, job_id, attempt, at, kind, message, stream
            FROM job_events
            WHERE job_id = @job_id AND seq > @after
            ORDER BY seq
            LIMIT @limit
            """);
        command.Parameters.Add(Text("job_id", jobId));
        command.Parameters.Add(new NpgsqlParameter("after", NpgsqlDbType.Bigint) { Value = afterSeq });
        command.Parameters.Add(Integer("limit", limit));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var events = new List<JobEvent>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            events.Add(ReadEvent(reader));
        return events;
    }

    /// <inheritdoc/>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        // Reads the queue's own table, so a dropped schema or a lost grant shows as down too.
        await using var command = dataSource.CreateCommand("SELECT max(version) FROM schema_version");
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Connection-level failures (refused, reset, timed out, pool exhausted) and the server saying it is shutting down,
    /// starting up or out of connections. Serialization failures and deadlocks are transient too, but they are not an
    /// outage, so they are not counted here.
    /// </remarks>
    public bool IsUnavailable(Exception exception) => exception switch
    {
        PostgresException server => server.SqlState.StartsWith("08", StringComparison.Ordinal)
            || server.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown
                or PostgresErrorCodes.CannotConnectNow or PostgresErrorCodes.TooManyConnections,
        NpgsqlException client => client.IsTransient,
        _ => false,
    };

    /// <summary>Wakes every waiting <see cref="LeaseAsync"/> with an <see cref="OperationCanceledException"/>, stops listening and closes the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
            return;
        await disposing.CancelAsync().ConfigureAwait(false);
        if (listener is not null)
            await listener.DisposeAsync().ConfigureAwait(false);
        await dataSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Fires the cancel token of this instance's lease on <paramref name="jobId"/>, if it holds one.</summary>
    private void CancelLocalLease(string jobId)
    {
        if (leases.TryGetValue(jobId, out var lease))
            lease.RequestCancel();
    }
}
