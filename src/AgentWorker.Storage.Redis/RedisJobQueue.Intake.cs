using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

// Raw pushes: programs written for the seed worker LPUSH job JSON onto the list named like the queue. They are
// moved into an intake list (so a worker dying mid-way loses nothing), parsed here with the same parser as the
// HTTP intake, and either stored as jobs or dead-lettered with the reason. A bad push never blocks the queue.
public sealed partial class RedisJobQueue
{
    // Enough to keep up with a burst, small enough that the lease call carrying it stays quick.
    private const int RawBatch = 100;

    /// <summary>Takes a batch of raw pushes in; returns how many were stored or dead-lettered by this call.</summary>
    private async Task<int> TakeRawAsync(CancellationToken cancellationToken)
    {
        var taken = (RedisResult[])(await EvaluateAsync(RedisScripts.Take, [keys.Raw, keys.Intake, RawBatch], cancellationToken).ConfigureAwait(false))!;
        var handled = 0;
        var stored = false;
        foreach (var item in taken)
        {
            var raw = (string?)item ?? "";
            var (job, reason) = ParseRaw(raw);
            if (job is not null)
            {
                var (created, record) = await StoreAsync(job, raw, cancellationToken).ConfigureAwait(false);
                stored |= created;
                handled += record is null ? 0 : 1;
            }
            else
            {
                handled += await DeadLetterAsync(raw, reason!, cancellationToken).ConfigureAwait(false);
            }
        }
        if (stored)
            WakeWaiters();
        return handled;
    }

    /// <summary>A raw push as a job, or why it is not one.</summary>
    private static (JobSpec? Job, string? Reason) ParseRaw(string raw)
    {
        JsonNode? body;
        try
        {
            body = JsonNode.Parse(raw);
        }
        catch (JsonException error)
        {
            return (null, $"invalid JSON: {error.Message}");
        }
        // The queue does not know the agent registry or the default agent: any agent passes here, a missing one
        // means the default, and the worker rejects unknown agents when it runs the job.
        var parsed = JobRequestParser.Parse(body, _ => true, defaultAgent: "", () => Ulid.NewUlid().ToString());
        if (parsed.Job is not null)
            return (parsed.Job, null);
        var problems = parsed.Errors.Select(error => $"{error.Key}: {string.Join("; ", error.Value)}");
        return (null, $"invalid job: {string.Join(", ", problems)}");
    }

    private async Task<int> DeadLetterAsync(string raw, string reason, CancellationToken cancellationToken)
    {
        var entry = new JsonObject
        {
            ["raw"] = raw,
            ["reason"] = reason,
            ["at"] = timeProvider.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        };
        return (int)await EvaluateAsync(RedisScripts.DeadLetter, [keys.Intake, raw, entry.ToJsonString(), keys.Dead], cancellationToken).ConfigureAwait(false);
    }
}
