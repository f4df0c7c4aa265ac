using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

// Raw pushes: programs written for the seed worker LPUSH job JSON onto the list named like the queue. Each
// queue instance waits for them with a blocking BRPOPLPUSH on a connection of its own (a blocking command would
// stall every other command on the shared multiplexer), which moves each push into an intake list so a worker
// dying mid-way loses nothing. The push is parsed with the same parser as the HTTP intake and either stored as a
// job (which wakes waiting workers of every process) or dead-lettered with the reason; a bad push never blocks
// the queue and never stops the loop.
public sealed partial class RedisJobQueue
{
    // Short enough that a broken connection is noticed soon, long enough that an idle queue costs Redis next to nothing.
    private const int IntakeBlockSeconds = 5;

    private static readonly TimeSpan IntakeCommandTimeout = TimeSpan.FromSeconds(IntakeBlockSeconds + 10);

    private static readonly TimeSpan IntakeRetryDelay = TimeSpan.FromSeconds(1);

    private async Task RunIntakeAsync(IDatabase blocking, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var raw = await blocking.ExecuteAsync("BRPOPLPUSH", (RedisKey)keys.Raw, (RedisKey)keys.Intake, IntakeBlockSeconds)
                    .WaitAsync(stopping).ConfigureAwait(false);
                if (!raw.IsNull)
                    await TakeInAsync((RedisValue)raw, stopping).ConfigureAwait(false);
            }
            catch (Exception error)
            {
                if (stopping.IsCancellationRequested)
                    return;
                // Redis unreachable or restarting: the multiplexer reconnects by itself.
                await Task.Delay(IntakeRetryDelay, timeProvider, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                // A push taken just before the connection failed may sit in the intake list unstored. Putting the
                // intake back is safe at any time (whoever removes a push from it owns it), so it is not stranded.
                // Other failures are left alone: a push that cannot be stored must not be taken again and again.
                if (error is RedisConnectionException or RedisTimeoutException)
                    await ReturnIntakeAsync(stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>
    /// Stores a raw push taken into the intake list as a job, or dead-letters it. The push stays bytes for finding
    /// it in the intake list again: one that is not UTF-8 no longer matches once decoded, and would be stranded there.
    /// </summary>
    private async Task TakeInAsync(RedisValue raw, CancellationToken cancellationToken)
    {
        var (job, reason) = ParseRaw((string?)raw ?? "");
        if (job is null)
        {
            await DeadLetterAsync(raw, reason!, cancellationToken).ConfigureAwait(false);
            return;
        }
        var (created, _) = await StoreAsync(job, raw, cancellationToken).ConfigureAwait(false);
        if (created)
            WakeWaiters();
    }

    /// <summary>A raw push as a job, or why it is not one.</summary>
    private static (JobSpec? Job, string? Reason) ParseRaw(string raw)
    {
        JobParseResult parsed;
        try
        {
            // The queue does not know the agent registry or the default agent: any agent passes here, a missing
            // one means the default, and the worker rejects unknown agents when it runs the job.
            parsed = JobRequestParser.Parse(JsonNode.Parse(raw), _ => true, defaultAgent: "", () => Ulid.NewUlid().ToString());
        }
        catch (JsonException error)
        {
            return (null, $"invalid JSON: {error.Message}");
        }
        if (parsed.Job is not null)
            return (parsed.Job, null);
        var problems = parsed.Errors.Select(error => $"{error.Key}: {string.Join("; ", error.Value)}");
        return (null, $"invalid job: {string.Join(", ", problems)}");
    }

    private async Task DeadLetterAsync(RedisValue raw, string reason, CancellationToken cancellationToken)
    {
        var entry = new JsonObject
        {
            // A push refused for a token in its repository URL must not keep the token in the dead-letter list.
            ["raw"] = SecretRedactor.MaskUrlCredentials((string?)raw ?? ""),
            ["reason"] = reason,
            ["at"] = timeProvider.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
        };
        await EvaluateAsync(RedisScripts.DeadLetter, [keys.Intake, raw, entry.ToJsonString(), keys.Dead], cancellationToken).ConfigureAwait(false);
    }
}
