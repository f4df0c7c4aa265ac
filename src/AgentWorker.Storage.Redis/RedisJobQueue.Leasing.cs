using System.Globalization;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

// Claiming, waiting, and everything a lease does. Each step is conditional on the lease token stored in the
// job hash, which is what makes "never succeeded twice" hold when a lease expired and another worker took the job.
public sealed partial class RedisJobQueue
{

    /// <inheritdoc/>
    public async Task<IJobLease?> LeaseAsync(string workerId, TimeSpan wait, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(workerId);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, disposing.Token);
        return await waiter.WaitAsync(wait, token => TryLeaseAsync(workerId, token), stop.Token).ConfigureAwait(false);
    }

    /// <summary>Claims the next runnable job, together with the other leases of this process looking at the same time.</summary>
    private Task<(RedisJobLease? Lease, DateTimeOffset? NextRunAt)> TryLeaseAsync(string workerId, CancellationToken cancellationToken) =>
        claims.RunAsync(new ClaimRequest(workerId, Guid.NewGuid().ToString("N")), cancellationToken);

    private sealed record ClaimRequest(string WorkerId, string Token);

    /// <summary>One script call for a batch of leases: a job for as many as there are runnable ones, in order.</summary>
    private async Task<IReadOnlyList<(RedisJobLease? Lease, DateTimeOffset? NextRunAt)>> ClaimBatchAsync(IReadOnlyList<ClaimRequest> requests)
    {
        var now = timeProvider.GetUtcNow();
        var values = new RedisValue[2 + (2 * requests.Count)];
        values[0] = Ms(now);
        values[1] = Ms(now + options.LeaseDuration);
        for (var i = 0; i < requests.Count; i++)
        {
            values[2 + (2 * i)] = requests[i].Token;
            values[3 + (2 * i)] = requests[i].WorkerId;
        }
        var reply = (RedisResult[])(await EvaluateAsync(RedisScripts.Lease, values, CancellationToken.None).ConfigureAwait(false))!;
        var nextRunAt = (string?)reply[0] is { Length: > 0 } due
            ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(due, NumberStyles.Integer, CultureInfo.InvariantCulture))
            : (DateTimeOffset?)null;
        var results = new (RedisJobLease?, DateTimeOffset?)[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            if (i + 1 >= reply.Length)
            {
                results[i] = (null, nextRunAt);
                continue;
            }
            var lease = new RedisJobLease(this, RedisRecords.ReadJob(reply[i + 1]), requests[i].Token, requests[i].WorkerId);
            // Registered before any caller hears of the claim, so a cancel coming right after it finds the lease.
            leases[lease.Job.Id] = lease;
            results[i] = (lease, null);
        }
        return results;
    }

    internal async Task<bool> ExtendLeaseAsync(RedisJobLease lease, CancellationToken cancellationToken)
    {
        var cancel = (int)await EvaluateAsync(
            RedisScripts.Extend,
            [Ms(timeProvider.GetUtcNow()), lease.Job.Id, lease.Token, Ms(timeProvider.GetUtcNow() + options.LeaseDuration)],
            cancellationToken).ConfigureAwait(false);
        if (cancel < 0)
        {
            Forget(lease);
            return false;
        }
        // The published cancel may have been missed (for example while reconnecting); the stored flag is not.
        if (cancel == 1)
            lease.RequestCancel();
        return true;
    }

    internal async Task CompleteLeaseAsync(RedisJobLease lease, JobResult result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        var owned = await completions.RunAsync(
            new CompleteRequest(lease.Job.Id, lease.Token, JsonSerializer.Serialize(result, RedisRecords.Json), ExitCode(result.ExitCode)),
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
        if (!owned)
            throw new LeaseLostException(lease.Job.Id);
    }

    private sealed record CompleteRequest(string Id, string Token, string Result, RedisValue ExitCode);

    /// <summary>One script call for a batch of completions; says for each whether its lease still owned the job.</summary>
    private async Task<IReadOnlyList<bool>> CompleteBatchAsync(IReadOnlyList<CompleteRequest> requests)
    {
        var values = new RedisValue[1 + (4 * requests.Count)];
        values[0] = Ms(timeProvider.GetUtcNow());
        var at = 1;
        foreach (var (id, token, result, exitCode) in requests)
        {
            values[at++] = id;
            values[at++] = token;
            values[at++] = result;
            values[at++] = exitCode;
        }
        var owned = (int[])(await EvaluateAsync(RedisScripts.Complete, values, CancellationToken.None).ConfigureAwait(false))!;
        return [.. owned.Select(flag => flag == 1)];
    }

    internal async Task<JobState> FailLeaseAsync(RedisJobLease lease, JobFailure failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var (state, outcome) = failure.Destination();
        var now = timeProvider.GetUtcNow();
        // Computed even when the script turns the retry into dead: the script alone knows the stored budget.
        var runAt = now + options.Backoff(lease.Attempt, Random.Shared.NextDouble());
        var reply = (string?)await EvaluateAsync(
            RedisScripts.Fail,
            [
                Ms(now),
                lease.Job.Id,
                lease.Token,
                state.Name(),
                outcome,
                failure.Error,
                failure.Result is { } result ? JsonSerializer.Serialize(result, RedisRecords.Json) : "",
                ExitCode(failure.ExitCode ?? failure.Result?.ExitCode),
                Ms(runAt),
            ],
            cancellationToken).ConfigureAwait(false);
        Forget(lease);
        if (reply is null)
            throw new LeaseLostException(lease.Job.Id);
        var moved = JobStates.TryParse(reply, out var parsed)
            ? parsed
            : throw new InvalidDataException($"job {lease.Job.Id}: unexpected state '{reply}' from the Redis queue");
        // Sleeping leases recompute when to look again, which may now be the end of this backoff.
        if (moved == JobState.Retrying)
            waiter.WakeAll();
        return moved;
    }

    internal async Task ReleaseLeaseAsync(RedisJobLease lease, CancellationToken cancellationToken)
    {
        var owned = (int)await EvaluateAsync(
            RedisScripts.Release,
            [Ms(timeProvider.GetUtcNow()), lease.Job.Id, lease.Token, lease.WorkerId],
            cancellationToken).ConfigureAwait(false) == 1;
        Forget(lease);
        if (owned)
            WakeWaiters();
    }

    /// <summary>Ends the lease: disposing it is then a no-op, and a cancel no longer reaches it.</summary>
    private void Forget(RedisJobLease lease)
    {
        lease.End();
        leases.TryRemove(new KeyValuePair<string, RedisJobLease>(lease.Job.Id, lease));
    }

    private static RedisValue ExitCode(int? exitCode) => exitCode is { } code ? code : "";

    private void WakeWaiters() => waiter.Wake();
}
