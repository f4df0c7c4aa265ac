using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;
using Npgsql;
using NpgsqlTypes;

namespace AgentWorker.Storage.Postgres;

// Claiming, waiting, and everything a lease does. A lease owns its job while the job row carries the lease's
// token; every change made through a lease is conditional on that token, which is what keeps a job from being
// marked succeeded twice when a lease expired and the job went to another worker. Each step is one statement
// (data-modifying CTEs): the job row, its attempt and its state event change together, in one round trip.
public sealed partial class PostgresJobQueue
{
    private const string Runnable = "j.state IN ('queued', 'retrying') AND j.run_at <= @now";
    private const string LeaseOrder = "ORDER BY j.priority DESC, j.seq";
    private const string ClearLease = "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL";
    private const string LeaseExpiredReason = "lease expired";

    // Claims up to @count jobs for the waiting leases of one batch (tokens and workers, in request order). SKIP LOCKED:
    // batches racing here (any process) each take different rows instead of queueing behind one; rows already given
    // back by another racer are skipped too, because the lock re-checks the state. The history in each returned row was
    // read before this statement's own attempt inserts became visible.
    private const string Claim =
        $"""
        WITH requests AS (
            SELECT * FROM unnest(@tokens, @workers) WITH ORDINALITY AS r (token, worker, n)
        ), picked AS (
            SELECT seq, row_number() OVER (ORDER BY priority DESC, seq) AS n FROM (
                SELECT j.seq, j.priority FROM jobs j WHERE {Runnable} {LeaseOrder} LIMIT @count FOR UPDATE SKIP LOCKED
            ) runnable
        ), claimed AS (
            UPDATE jobs j SET state = 'running', attempts = attempts + 1, lease_token = r.token, lease_owner = r.worker,
                lease_expires_at = @expires, updated_at = @now
            FROM picked p JOIN requests r USING (n)
            WHERE j.seq = p.seq
            RETURNING r.n, {JobColumns}
        ), attempt AS (
            INSERT INTO job_attempts (job_id, number, lease_token, worker, started_at)
            SELECT c.id, c.attempts, r.token, r.worker, @now FROM claimed c JOIN requests r USING (n)
        ), event AS (
            INSERT INTO job_events (job_id, attempt, at, kind, message)
            SELECT c.id, c.attempts, @now, 'state', 'running: ' || r.worker FROM claimed c JOIN requests r USING (n)
        )
        SELECT * FROM claimed
        """;

    // When nothing is runnable: how long a waiter may sleep before a delayed job or a retry backoff comes due.
    private const string NextDue = "SELECT min(run_at) FROM jobs WHERE state IN ('queued', 'retrying')";

    // Expired leases go back to the queue (or to cancelled when a cancel was pending, dead when the budget is spent).
    // Locked rows are skipped: whoever holds them is handing them back or renewing right now.
    private const string RecoverExpired =
        $"""
        WITH expired AS (
            SELECT seq, lease_token FROM jobs WHERE state = 'running' AND lease_expires_at <= @now FOR UPDATE SKIP LOCKED
        ), closed AS (
            UPDATE job_attempts SET finished_at = @now, outcome = '{AttemptOutcome.LeaseExpired}', error = @reason
            WHERE lease_token IN (SELECT lease_token FROM expired)
        ), recovered AS (
            UPDATE jobs j SET
                state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN @now END,
                error = @reason, updated_at = @now, {ClearLease}
            FROM expired e WHERE j.seq = e.seq
            RETURNING j.id, j.state, j.attempts
        ), event AS (
            INSERT INTO job_events (job_id, attempt, at, kind, message)
            SELECT id, attempts, @now, 'state', state || ': ' || @reason FROM recovered
        )
        SELECT id, pg_notify(@channel, '{PostgresListener.WakeAllPayload}')::text FROM recovered
        """;


    /// <inheritdoc/>
    public async Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, disposing.Token);
        return await waiter.WaitAsync(wait, token => TryLeaseAsync(workerId, token), stop.Token).ConfigureAwait(false);
    }

    /// <summary>Claims the next runnable job, together with the other leases of this process looking at the same time.</summary>
    private async Task<(PostgresJobLease? Lease, DateTimeOffset? NextDue)> TryLeaseAsync(string workerId, CancellationToken cancellationToken)
    {
        var (lease, nextDue) = await claims.RunAsync(new ClaimRequest(workerId, Guid.NewGuid()), cancellationToken).ConfigureAwait(false);
        return (lease, nextDue);
    }

    private sealed record ClaimRequest(string WorkerId, Guid Token);

    /// <summary>
    /// One round trip for a batch of leases: gives back expired leases, claims a job for as many of the requests as there
    /// are runnable jobs, and says when the next one is due for the others.
    /// </summary>
    private async Task<IReadOnlyList<(PostgresJobLease? Lease, DateTimeOffset? NextDue)>> ClaimBatchAsync(IReadOnlyList<ClaimRequest> requests)
    {
        var now = timeProvider.GetUtcNow();
        await using var batch = dataSource.CreateBatch();
        var recover = new NpgsqlBatchCommand(RecoverExpired);
        recover.Parameters.AddRange(RecoverParameters(now));
        var claim = new NpgsqlBatchCommand(Claim);
        claim.Parameters.Add(ArrayOf("tokens", NpgsqlDbType.Uuid, requests.Select(r => r.Token)));
        claim.Parameters.Add(ArrayOf("workers", NpgsqlDbType.Text, requests.Select(r => r.WorkerId)));
        claim.Parameters.Add(new NpgsqlParameter("count", NpgsqlDbType.Bigint) { Value = (long)requests.Count });
        claim.Parameters.Add(Time("expires", now + options.LeaseDuration));
        claim.Parameters.Add(Time("now", now));
        batch.BatchCommands.Add(recover);
        batch.BatchCommands.Add(claim);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(NextDue));

        var recovered = false;
        var claimed = new JobRecord?[requests.Count];
        DateTimeOffset? due = null;
        await using (var reader = await batch.ExecuteReaderAsync().ConfigureAwait(false))
        {
            while (await reader.ReadAsync().ConfigureAwait(false))
                recovered = true;
            await reader.NextResultAsync().ConfigureAwait(false);
            while (await reader.ReadAsync().ConfigureAwait(false))
                claimed[reader.GetInt64(0) - 1] = ReadJob(reader, first: 1);
            await reader.NextResultAsync().ConfigureAwait(false);
            if (await reader.ReadAsync().ConfigureAwait(false) && !reader.IsDBNull(0))
                due = reader.GetFieldValue<DateTimeOffset>(0);
        }
        if (recovered)
            waiter.WakeAll();

        var results = new (PostgresJobLease?, DateTimeOffset?)[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            if (claimed[i] is not { } job)
            {
                results[i] = (null, due);
                continue;
            }
            var (workerId, token) = requests[i];
            job = job with { AttemptHistory = [.. job.AttemptHistory, new AttemptRecord(job.Attempts, workerId, Truncate(now), null, null, null, null)] };
            var lease = new PostgresJobLease(this, job, token, workerId);
            // Registered before any caller hears of the claim, so a cancel coming right after it finds the lease.
            leases[job.Id] = lease;
            results[i] = (lease, null);
        }
        return results;
    }

    private NpgsqlParameter[] RecoverParameters(DateTimeOffset now) =>
        [Time("now", now), Text("reason", LeaseExpiredReason), Text("channel", channel)];

    internal async Task<bool> ExtendLeaseAsync(PostgresJobLease lease, CancellationToken cancellationToken)
    {
        // An expired lease that nobody took over yet still owns its job, so renewing it is fine.
        await using var command = dataSource.CreateCommand(
            "UPDATE jobs SET lease_expires_at = @expires WHERE id = @id AND lease_token = @token RETURNING cancel_requested");
        command.Parameters.Add(Text("id", lease.Job.Id));
        command.Parameters.Add(Uuid("token", lease.Token));
        command.Parameters.Add(Time("expires", timeProvider.GetUtcNow() + options.LeaseDuration));
        var cancelRequested = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (cancelRequested is not bool requested)
        {
            Forget(lease);
            return false;
        }
        if (requested)
            lease.RequestCancel();
        return true;
    }

    internal async Task CompleteLeaseAsync(PostgresJobLease lease, JobResult result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        var owned = await completions.RunAsync(
            new CompleteRequest(lease.Job.Id, lease.Token, JsonSerializer.Serialize(result, Json), result.ExitCode, lease.Attempt),
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
        if (!owned)
            throw new LeaseLostException(lease.Job.Id);
    }

    private sealed record CompleteRequest(string Id, Guid Token, string Result, int? ExitCode, int Attempt);

    // The completions of one batch as arrays; a job counts only while its row still carries the lease's token.
    private const string Complete =
        $"""
        WITH input AS (
            SELECT * FROM unnest(@ids, @tokens, @results, @exit_codes, @attempts) AS i (id, token, result, exit_code, attempt)
        ), owned AS (
            UPDATE jobs j SET state = 'succeeded', result = i.result::jsonb, error = NULL, finished_at = @now, updated_at = @now, {ClearLease}
            FROM input i
            WHERE j.id = i.id AND j.lease_token = i.token
            RETURNING j.id, i.token, i.exit_code, i.attempt
        ), attempt AS (
            UPDATE job_attempts a SET finished_at = @now, outcome = '{AttemptOutcome.Succeeded}', exit_code = o.exit_code
            FROM owned o
            WHERE a.lease_token = o.token
        ), event AS (
            INSERT INTO job_events (job_id, attempt, at, kind, message) SELECT id, attempt, @now, 'state', 'succeeded' FROM owned
        )
        SELECT token FROM owned
        """;

    /// <summary>One statement for a batch of completions; says for each whether its lease still owned the job.</summary>
    private async Task<IReadOnlyList<bool>> CompleteBatchAsync(IReadOnlyList<CompleteRequest> requests)
    {
        await using var command = dataSource.CreateCommand(Complete);
        command.Parameters.Add(ArrayOf("ids", NpgsqlDbType.Text, requests.Select(r => r.Id)));
        command.Parameters.Add(ArrayOf("tokens", NpgsqlDbType.Uuid, requests.Select(r => r.Token)));
        command.Parameters.Add(ArrayOf("results", NpgsqlDbType.Text, requests.Select(r => r.Result)));
        command.Parameters.Add(ArrayOf("exit_codes", NpgsqlDbType.Integer, requests.Select(r => r.ExitCode)));
        command.Parameters.Add(ArrayOf("attempts", NpgsqlDbType.Integer, requests.Select(r => r.Attempt)));
        command.Parameters.Add(Time("now", timeProvider.GetUtcNow()));
        // By token, not id: a batch may hold a lost lease and the current one of the same job.
        var owned = new HashSet<Guid>();
        await using (var reader = await command.ExecuteReaderAsync().ConfigureAwait(false))
        {
            while (await reader.ReadAsync().ConfigureAwait(false))
                owned.Add(reader.GetGuid(0));
        }
        return [.. requests.Select(r => owned.Contains(r.Token))];
    }

    internal async Task<JobState> FailLeaseAsync(PostgresJobLease lease, JobFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var (state, outcome) = failure.Destination();
        var now = timeProvider.GetUtcNow();
        // A retry whose budget is spent goes dead; the row's max_attempts decides, inside the same statement.
        // Waiters in every process are told about a retry so they look again when its backoff ends.
        await using var command = dataSource.CreateCommand(
            $"""
            WITH owned AS (
                UPDATE jobs SET
                    state = CASE WHEN @state = 'retrying' AND @attempt >= max_attempts THEN 'dead' ELSE @state END,
                    run_at = CASE WHEN @state = 'retrying' AND @attempt < max_attempts THEN @retry_at ELSE run_at END,
                    finished_at = CASE WHEN @state = 'retrying' AND @attempt < max_attempts THEN NULL ELSE @now END,
                    error = @error, result = @result, updated_at = @now, {ClearLease}
                WHERE id = @id AND lease_token = @token
                RETURNING id, state
            ), attempt AS (
                UPDATE job_attempts SET finished_at = @now, outcome = @outcome, exit_code = @exit_code, error = @error
                WHERE lease_token = @token AND EXISTS (SELECT FROM owned)
            ), event AS (
                INSERT INTO job_events (job_id, attempt, at, kind, message)
                SELECT id, @attempt, @now, 'state', CASE WHEN @error IS NULL THEN state ELSE state || ': ' || @error END FROM owned
            )
            SELECT state, CASE WHEN state = 'retrying' THEN pg_notify(@channel, '{PostgresListener.WakeAllPayload}')::text END FROM owned
            """);
        command.Parameters.Add(Text("id", lease.Job.Id));
        command.Parameters.Add(Uuid("token", lease.Token));
        command.Parameters.Add(Text("state", state.Name()));
        command.Parameters.Add(Integer("attempt", lease.Attempt));
        command.Parameters.Add(Time("retry_at", RoundUp(now + options.Backoff(lease.Attempt, Random.Shared.NextDouble()))));
        command.Parameters.Add(Text("error", failure.Error));
        command.Parameters.Add(Jsonb("result", failure.Result));
        command.Parameters.Add(Text("outcome", outcome));
        command.Parameters.Add(Integer("exit_code", failure.ExitCode ?? failure.Result?.ExitCode));
        command.Parameters.Add(Time("now", now));
        command.Parameters.Add(Text("channel", channel));
        var stored = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        Forget(lease);
        if (stored is not string name)
            throw new LeaseLostException(lease.Job.Id);
        var final = ParseState(name);
        // Sleeping leases of this process recompute when to look again, which may now be the end of this backoff.
        if (final == JobState.Retrying)
            waiter.WakeAll();
        return final;
    }

    internal async Task ReleaseLeaseAsync(PostgresJobLease lease, CancellationToken cancellationToken)
    {
        // The attempt is not counted: the worker gave the job back (shutdown), it did not fail it.
        // A lost lease has nothing to hand back: the job already belongs to someone else.
        await using var command = dataSource.CreateCommand(
            $"""
            WITH owned AS (
                UPDATE jobs SET state = 'queued', attempts = attempts - 1, updated_at = @now, {ClearLease}
                WHERE id = @id AND lease_token = @token
                RETURNING id
            ), attempt AS (
                UPDATE job_attempts SET finished_at = @now, outcome = '{AttemptOutcome.Released}'
                WHERE lease_token = @token AND EXISTS (SELECT FROM owned)
            ), event AS (
                INSERT INTO job_events (job_id, attempt, at, kind, message) SELECT id, @attempt, @now, 'state', @message FROM owned
            )
            SELECT id, pg_notify(@channel, @wake)::text FROM owned
            """);
        command.Parameters.Add(Text("id", lease.Job.Id));
        command.Parameters.Add(Uuid("token", lease.Token));
        command.Parameters.Add(Integer("attempt", lease.Attempt));
        command.Parameters.Add(Text("message", StateMessage(JobState.Queued, $"released by {lease.WorkerId}")));
        command.Parameters.Add(Time("now", timeProvider.GetUtcNow()));
        command.Parameters.Add(Text("channel", channel));
        command.Parameters.Add(Text("wake", wakePayload));
        var owned = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
        Forget(lease);
        if (owned)
            WakeWaiters();
    }

    /// <summary>Ends the lease: disposing it is then a no-op, and a cancel no longer reaches it.</summary>
    private void Forget(PostgresJobLease lease)
    {
        lease.End();
        leases.TryRemove(new KeyValuePair<string, PostgresJobLease>(lease.Job.Id, lease));
    }

    private void WakeWaiters() => waiter.Wake();


    // timestamptz keeps microseconds: the record handed out must equal what a later read returns.
    private static DateTimeOffset Truncate(DateTimeOffset time) => new(time.Ticks - (time.Ticks % 10), time.Offset);

    // A backoff stored a fraction of a microsecond early would let the job run before its backoff ends.
    private static DateTimeOffset RoundUp(DateTimeOffset time) => time.Ticks % 10 == 0 ? time : Truncate(time).AddTicks(10);
}
