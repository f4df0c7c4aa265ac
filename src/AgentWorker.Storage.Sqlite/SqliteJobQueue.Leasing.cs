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
        // Time-ordered, so each new attempt's token lands at the end of job_attempts' unique index instead of on a random page.
        var token = Guid.CreateVersion7().ToString("N");
        (string Name, object? Value)[] claim = [("$token", token), ("$worker", workerId), ("$expires", Ms(now + options.LeaseDuration)), ("$now", Ms(now))];
        SqliteJobLease? registered = null;
        (SqliteJobLease? Lease, DateTimeOffset? NextRunAt, int Recovered) outcome;
        try
        {
            outcome = await database.WriteAsync<(SqliteJobLease?, DateTimeOffset?, int)>(
                session =>
                {
                    // Run again when another write of the group threw (SqliteDatabase.WriteAsync): the lease of the first
                    // run was rolled back with it.
                    if (registered is not null)
                    {
                        Forget(registered);
                        registered = null;
                    }
                    // Once per group commit: the leases claimed together would all find the same expired ones.
                    var recovered = session.Scratch.TryAdd(nameof(RecoverExpired), true) ? RecoverExpired(session, now) : 0;
                    var claimed = session.Query(
                        $"""
                        UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = $token, lease_owner = $worker,
                            lease_expires_at = $expires, updated_at = $now
                        WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_runnable WHERE {Runnable} {LeaseOrder} LIMIT 1)
                        RETURNING {JobColumns}
                        """,
                        claim,
                        ReadJob);
                    if (claimed.Count == 0)
                    {
                        var nextRunAt = session.Scalar<long?>("SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN ('queued', 'retrying')", []);
                        return (null, Time(nextRunAt), recovered);
                    }

                    var job = claimed[0];
                    session.Execute(
                        "INSERT INTO job_attempts (job_id, number, lease_token, worker, started_at) VALUES ($job_id, $number, $token, $worker, $now)",
                        [("$job_id", job.Id), ("$number", job.Attempts), ("$token", token), ("$worker", workerId), ("$now", Ms(now))]);
                    AppendState(session, job.Id, job.Attempts, JobState.Running, workerId, now);
                    var lease = new SqliteJobLease(this, job with { AttemptHistory = ReadAttempts(session, job.Id) }, token, workerId);
                    // Registered inside the group: a cancel commits in this group or a later one, and looks for the lease
                    // after its commit, so it cannot miss it.
                    leases[job.Id] = registered = lease;
                    return (lease, null, recovered);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch when (registered is not null)
        {
            // The claim did not commit: there is no lease to cancel.
            Forget(registered);
            throw;
        }
        if (outcome.Recovered > 0)
            waiter.WakeAll();
        return (outcome.Lease, outcome.NextRunAt);
    }

    /// <summary>
    /// Gives jobs whose lease expired back to the queue (or to dead/cancelled) and closes their attempts.
    /// Returns how many.
    /// </summary>
    private static int RecoverExpired(SqliteSession session, DateTimeOffset now)
    {
        // Attempts first: they are found through the lease tokens that the jobs update clears.
        session.Execute(
            $"""
            UPDATE job_attempts SET finished_at = $now, outcome = $outcome, error = $error
            WHERE lease_token IN (SELECT lease_token FROM jobs INDEXED BY jobs_lease_expiry WHERE {Expired})
            """,
            [("$now", Ms(now)), ("$outcome", AttemptOutcome.LeaseExpired), ("$error", LeaseExpired)]);
        var recovered = session.Query(
            $"""
            UPDATE jobs INDEXED BY jobs_lease_expiry SET state = {AfterExpiry},
                finished_at = CASE WHEN {AfterExpiry} = 'queued' THEN NULL ELSE $now END,
                error = $error, updated_at = $now, {ClearLease}
            WHERE {Expired}
            RETURNING id, state, attempts
            """,
            [("$now", Ms(now)), ("$error", LeaseExpired)],
            reader => (Id: reader.GetString(0), State: ParseState(reader.GetString(1)), Attempts: reader.GetInt32(2)));
        foreach (var (id, state, attempts) in recovered)
            AppendState(session, id, attempts, state, LeaseExpired, now);
        return recovered.Count;
    }

    internal async Task<bool> ExtendLeaseAsync(SqliteJobLease lease, CancellationToken cancellationToken)
    {
        (string Name, object? Value)[] extend = [("$id", lease.Job.Id), ("$token", lease.Token), ("$expires", Ms(timeProvider.GetUtcNow() + options.LeaseDuration))];
        // An expired lease that nobody took over yet still owns its job, so renewing it is fine.
        var cancelRequested = await database.WriteAsync(
            session => session.Query(
                "UPDATE jobs SET lease_expires_at = $expires WHERE id = $id AND lease_token = $token RETURNING cancel_requested",
                extend,
                reader => reader.GetBoolean(0)),
            cancellationToken).ConfigureAwait(false);
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
        (string Name, object? Value)[] complete = [("$id", lease.Job.Id), ("$token", lease.Token), ("$result", JsonSerializer.Serialize(result, Json)), ("$now", Ms(now))];
        await database.WriteAsync(
            session =>
            {
                var owned = session.Execute(
                    $"""
                    UPDATE jobs SET state = 'succeeded', result = $result, error = NULL, finished_at = $now, updated_at = $now, {ClearLease}
                    WHERE id = $id AND lease_token = $token
                    """,
                    complete) == 1;
                if (!owned)
                    throw LeaseLost(lease);
                CloseAttempt(session, lease, now, AttemptOutcome.Succeeded, result.ExitCode, null);
                AppendState(session, lease.Job.Id, lease.Attempt, JobState.Succeeded, null, now);
                return true;
            },
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
    }

    internal async Task<JobState> FailLeaseAsync(SqliteJobLease lease, JobFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var (destination, outcome) = failure.Destination();
        var now = timeProvider.GetUtcNow();
        var retryAt = now + options.Backoff(lease.Attempt, Random.Shared.NextDouble());
        var result = failure.Result is { } stored ? JsonSerializer.Serialize(stored, Json) : null;
        var state = await database.WriteAsync(
            session =>
            {
                var maxAttempts = session.Scalar<long?>(
                    "SELECT max_attempts FROM jobs WHERE id = $id AND lease_token = $token",
                    [("$id", lease.Job.Id), ("$token", lease.Token)]);
                if (maxAttempts is null)
                    throw LeaseLost(lease);
                var moved = destination == JobState.Retrying && lease.Attempt >= maxAttempts ? JobState.Dead : destination;
                session.Execute(
                    $"""
                    UPDATE jobs SET state = $state, run_at = coalesce($run_at, run_at), error = $error, result = $result,
                        finished_at = $finished_at, updated_at = $now, {ClearLease}
                    WHERE id = $id
                    """,
                    [
                        ("$id", lease.Job.Id),
                        ("$state", moved.Name()),
                        ("$run_at", moved == JobState.Retrying ? Ms(retryAt) : null),
                        ("$error", failure.Error),
                        ("$result", result),
                        ("$finished_at", moved.IsTerminal() ? Ms(now) : null),
                        ("$now", Ms(now)),
                    ]);
                CloseAttempt(session, lease, now, outcome, failure.ExitCode ?? failure.Result?.ExitCode, failure.Error);
                AppendState(session, lease.Job.Id, lease.Attempt, moved, failure.Error, now);
                return moved;
            },
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
        // Sleeping leases recompute when to look again, which may now be the end of this backoff.
        if (state == JobState.Retrying)
            waiter.WakeAll();
        return state;
    }

    internal async Task ReleaseLeaseAsync(SqliteJobLease lease, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var owned = await database.WriteAsync(
            session =>
            {
                // The attempt is not counted: the worker gave the job back (shutdown), it did not fail it.
                var owned = session.Execute(
                    $"UPDATE jobs SET state = 'queued', attempts = attempts - 1, updated_at = $now, {ClearLease} WHERE id = $id AND lease_token = $token",
                    [("$id", lease.Job.Id), ("$token", lease.Token), ("$now", Ms(now))]) == 1;
                // A lost lease has nothing to hand back: the job already belongs to someone else.
                if (owned)
                {
                    CloseAttempt(session, lease, now, AttemptOutcome.Released, null, null);
                    AppendState(session, lease.Job.Id, lease.Attempt, JobState.Queued, $"released by {lease.WorkerId}", now);
                }
                return owned;
            },
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
        if (owned)
            waiter.Wake();
    }

    private static void CloseAttempt(SqliteSession session, SqliteJobLease lease, DateTimeOffset now, string outcome, int? exitCode, string? error) =>
        session.Execute(
            "UPDATE job_attempts SET finished_at = $now, outcome = $outcome, exit_code = $exit_code, error = $error WHERE lease_token = $token",
            [("$token", lease.Token), ("$now", Ms(now)), ("$outcome", outcome), ("$exit_code", exitCode), ("$error", error)]);

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
}
