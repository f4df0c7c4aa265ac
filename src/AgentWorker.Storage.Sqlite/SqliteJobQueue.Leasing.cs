using System.Diagnostics;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Storage.Sqlite;

// Claiming, waiting, and everything a lease does. A lease owns its job while the job row carries the
// lease's token; every change made through a lease is conditional on that token, which is what makes
// "never succeeded twice" hold when a lease expired and the job went to another worker.
public sealed partial class SqliteJobQueue
{
    // INDEXED BY pins the partial indexes: without ANALYZE statistics the planner picks jobs_state and
    // then sorts the whole backlog on every claim, inside the write lock. It also makes SQLite refuse the
    // query if an edit ever makes a WHERE clause stop matching its index.
    private const string Runnable = "state IN ('queued', 'retrying') AND run_at <= $now";
    private const string LeaseOrder = "ORDER BY priority DESC, seq";
    private const string Expired = "state = 'running' AND lease_expires_at <= $now";

    private const string ClearLease = "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL";

    // Where a job whose lease expired goes: a requested cancel is honoured, an exhausted budget is dead, otherwise it runs again.
    private const string AfterExpiry = "CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END";

    private const string LeaseExpired = "lease expired";


    /// <inheritdoc/>
    public async Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, disposing.Token);
        return await waiter.WaitAsync(wait, token => TryLeaseAsync(workerId, token), stop.Token).ConfigureAwait(false);
    }

    /// <summary>Claims the next runnable job, or reports when the earliest waiting one becomes due.</summary>
    private async Task<(SqliteJobLease? Lease, DateTimeOffset? NextRunAt)> TryLeaseAsync(string workerId, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var token = Guid.NewGuid().ToString("N");
        await using var session = await database.WriteAsync(cancellationToken).ConfigureAwait(false);
        var recovered = await RecoverExpiredAsync(session, now, cancellationToken).ConfigureAwait(false);
        var claimed = await session.QueryAsync(
            $"""
            UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = $token, lease_owner = $worker,
                lease_expires_at = $expires, updated_at = $now
            WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_runnable WHERE {Runnable} {LeaseOrder} LIMIT 1)
            RETURNING id, attempts
            """,
            [("$token", token), ("$worker", workerId), ("$expires", Ms(now + options.LeaseDuration)), ("$now", Ms(now))],
            reader => (Id: reader.GetString(0), Attempt: reader.GetInt32(1)),
            cancellationToken).ConfigureAwait(false);
        if (claimed.Count == 0)
        {
            var nextRunAt = await session.ScalarAsync<long?>(
                "SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN ('queued', 'retrying')", [], cancellationToken).ConfigureAwait(false);
            await session.CommitAsync(cancellationToken).ConfigureAwait(false);
            return (null, Time(nextRunAt));
        }

        var (id, attempt) = claimed[0];
        await session.ExecuteAsync(
            "INSERT INTO job_attempts (job_id, number, lease_token, worker, started_at) VALUES ($job_id, $number, $token, $worker, $now)",
            [("$job_id", id), ("$number", attempt), ("$token", token), ("$worker", workerId), ("$now", Ms(now))],
            cancellationToken).ConfigureAwait(false);
        await AppendStateAsync(session, id, attempt, JobState.Running, workerId, now, cancellationToken).ConfigureAwait(false);
        var job = await ReadJobAsync(session, id, cancellationToken).ConfigureAwait(false) ?? throw new UnreachableException();
        await session.CommitAsync(cancellationToken).ConfigureAwait(false);

        var lease = new SqliteJobLease(this, job, token, workerId);
        // Registered while the session still holds this instance's write gate: CancelAsync commits under
        // the same gate, so it cannot slip in between the claim and the registration and miss the lease.
        leases[id] = lease;
        if (recovered > 0)
            WakeWaiters();
        return (lease, null);
    }

    /// <summary>
    /// Gives jobs whose lease expired back to the queue (or to dead/cancelled) and closes their attempts.
    /// Returns how many.
    /// </summary>
    private static async Task<int> RecoverExpiredAsync(SqliteSession session, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Attempts first: they are found through the lease tokens that the jobs update clears.
        await session.ExecuteAsync(
            $"""
            UPDATE job_attempts SET finished_at = $now, outcome = $outcome, error = $error
            WHERE lease_token IN (SELECT lease_token FROM jobs INDEXED BY jobs_lease_expiry WHERE {Expired})
            """,
            [("$now", Ms(now)), ("$outcome", AttemptOutcome.LeaseExpired), ("$error", LeaseExpired)],
            cancellationToken).ConfigureAwait(false);
        var recovered = await session.QueryAsync(
            $"""
            UPDATE jobs INDEXED BY jobs_lease_expiry SET state = {AfterExpiry},
                finished_at = CASE WHEN {AfterExpiry} = 'queued' THEN NULL ELSE $now END,
                error = $error, updated_at = $now, {ClearLease}
            WHERE {Expired}
            RETURNING id, state, attempts
            """,
            [("$now", Ms(now)), ("$error", LeaseExpired)],
            reader => (Id: reader.GetString(0), State: ParseState(reader.GetString(1)), Attempts: reader.GetInt32(2)),
            cancellationToken).ConfigureAwait(false);
        foreach (var (id, state, attempts) in recovered)
            await AppendStateAsync(session, id, attempts, state, LeaseExpired, now, cancellationToken).ConfigureAwait(false);
        return recovered.Count;
    }

    internal async Task<bool> ExtendLeaseAsync(SqliteJobLease lease, CancellationToken cancellationToken)
    {
        List<bool> cancelRequested;
        await using (var session = await database.WriteAsync(cancellationToken).ConfigureAwait(false))
        {
            // An expired lease that nobody took over yet still owns its job, so renewing it is fine.
            cancelRequested = await session.QueryAsync(
                "UPDATE jobs SET lease_expires_at = $expires WHERE id = $id AND lease_token = $token RETURNING cancel_requested",
                [("$id", lease.Job.Id), ("$token", lease.Token), ("$expires", Ms(timeProvider.GetUtcNow() + options.LeaseDuration))],
                reader => reader.GetBoolean(0),
                cancellationToken).ConfigureAwait(false);
            await session.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        if (cancelRequested.Count == 0)
        {
            Forget(lease);
            return false;
        }
        if (cancelRequested[0])
            lease.RequestCancel();
        return true;
    }

    internal async Task CompleteLeaseAsync(SqliteJobLease lease, JobResult result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        var now = timeProvider.GetUtcNow();
        await using (var session = await database.WriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var owned = await session.ExecuteAsync(
                $"""
                UPDATE jobs SET state = 'succeeded', result = $result, error = NULL, finished_at = $now, updated_at = $now, {ClearLease}
                WHERE id = $id AND lease_token = $token
                """,
                [("$id", lease.Job.Id), ("$token", lease.Token), ("$result", JsonSerializer.Serialize(result, Json)), ("$now", Ms(now))],
                cancellationToken).ConfigureAwait(false) == 1;
            if (!owned)
                throw LeaseLost(lease);
            await CloseAttemptAsync(session, lease, now, AttemptOutcome.Succeeded, result.ExitCode, null, cancellationToken).ConfigureAwait(false);
            await AppendStateAsync(session, lease.Job.Id, lease.Attempt, JobState.Succeeded, null, now, cancellationToken).ConfigureAwait(false);
            await session.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        Forget(lease);
    }

    internal async Task<JobState> FailLeaseAsync(SqliteJobLease lease, JobFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var (state, outcome) = failure.Destination();
        var now = timeProvider.GetUtcNow();
        await using (var session = await database.WriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var maxAttempts = await session.ScalarAsync<long?>(
                "SELECT max_attempts FROM jobs WHERE id = $id AND lease_token = $token",
                [("$id", lease.Job.Id), ("$token", lease.Token)],
                cancellationToken).ConfigureAwait(false);
            if (maxAttempts is null)
                throw LeaseLost(lease);
            if (state == JobState.Retrying && lease.Attempt >= maxAttempts)
                state = JobState.Dead;
            var runAt = state == JobState.Retrying ? now + options.Backoff(lease.Attempt, Random.Shared.NextDouble()) : (DateTimeOffset?)null;
            await session.ExecuteAsync(
                $"""
                UPDATE jobs SET state = $state, run_at = coalesce($run_at, run_at), error = $error, result = $result,
                    finished_at = $finished_at, updated_at = $now, {ClearLease}
                WHERE id = $id
                """,
                [
                    ("$id", lease.Job.Id),
                    ("$state", state.Name()),
                    ("$run_at", runAt is { } due ? Ms(due) : null),
                    ("$error", failure.Error),
                    ("$result", failure.Result is { } result ? JsonSerializer.Serialize(result, Json) : null),
                    ("$finished_at", state.IsTerminal() ? Ms(now) : null),
                    ("$now", Ms(now)),
                ],
                cancellationToken).ConfigureAwait(false);
            await CloseAttemptAsync(session, lease, now, outcome, failure.ExitCode ?? failure.Result?.ExitCode, failure.Error, cancellationToken).ConfigureAwait(false);
            await AppendStateAsync(session, lease.Job.Id, lease.Attempt, state, failure.Error, now, cancellationToken).ConfigureAwait(false);
            await session.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        Forget(lease);
        // Sleeping leases recompute when to look again, which may now be the end of this backoff.
        if (state == JobState.Retrying)
            WakeWaiters();
        return state;
    }

    internal async Task ReleaseLeaseAsync(SqliteJobLease lease, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        bool owned;
        await using (var session = await database.WriteAsync(cancellationToken).ConfigureAwait(false))
        {
            // The attempt is not counted: the worker gave the job back (shutdown), it did not fail it.
            owned = await session.ExecuteAsync(
                $"UPDATE jobs SET state = 'queued', attempts = attempts - 1, updated_at = $now, {ClearLease} WHERE id = $id AND lease_token = $token",
                [("$id", lease.Job.Id), ("$token", lease.Token), ("$now", Ms(now))],
                cancellationToken).ConfigureAwait(false) == 1;
            // A lost lease has nothing to hand back: the job already belongs to someone else.
            if (owned)
            {
                await CloseAttemptAsync(session, lease, now, AttemptOutcome.Released, null, null, cancellationToken).ConfigureAwait(false);
                await AppendStateAsync(session, lease.Job.Id, lease.Attempt, JobState.Queued, $"released by {lease.WorkerId}", now, cancellationToken).ConfigureAwait(false);
                await session.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        Forget(lease);
        if (owned)
            WakeWaiters();
    }

    private static Task CloseAttemptAsync(
        SqliteSession session,
        SqliteJobLease lease,
        DateTimeOffset now,
        string outcome,
        int? exitCode,
        string? error,
        CancellationToken cancellationToken) =>
        session.ExecuteAsync(
            "UPDATE job_attempts SET finished_at = $now, outcome = $outcome, exit_code = $exit_code, error = $error WHERE lease_token = $token",
            [("$token", lease.Token), ("$now", Ms(now)), ("$outcome", outcome), ("$exit_code", exitCode), ("$error", error)],
            cancellationToken);

    private LeaseLostException LeaseLost(SqliteJobLease lease)
    {
        Forget(lease);
        return new LeaseLostException(lease.Job.Id);
    }

    /// <summary>Ends the lease: disposing it is then a no-op, and a cancel no longer reaches it.</summary>
    private void Forget(SqliteJobLease lease)
    {
        lease.End();
        leases.TryRemove(new KeyValuePair<string, SqliteJobLease>(lease.Job.Id, lease));
    }

    private void WakeWaiters() => waiter.Wake();

}
