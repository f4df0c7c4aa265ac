using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Sinks;

/// <summary>
/// One line of a job's delivery log, stored as a <c>sink</c> event (its message is this record as JSON).
/// <see cref="Outcome"/>: <c>delivered</c>, <c>retrying</c> (this try failed, another follows after
/// <see cref="RetryInSeconds"/>), <c>failed</c> (given up) or <c>abandoned</c> (the process stopped first).
/// </summary>
public sealed record DeliveryRecord(string Sink, string Event, string DeliveryId, int Attempt, string Outcome, string? Error = null, double? RetryInSeconds = null)
{
    public const string Delivered = "delivered";
    public const string Retrying = "retrying";
    public const string Failed = "failed";
    public const string Abandoned = "abandoned";

    public string ToJson() => JsonSerializer.Serialize(this, ResultJson.Options);

    /// <summary>Reads a stored log line; null when it is not one.</summary>
    public static DeliveryRecord? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<DeliveryRecord>(json, ResultJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A job's delivery log, oldest first, each line with the time it was written.</summary>
    public static async Task<IReadOnlyList<(DateTimeOffset At, DeliveryRecord Record)>> ReadLogAsync(IJobQueue queue, string jobId, CancellationToken cancellationToken)
    {
        var log = new List<(DateTimeOffset, DeliveryRecord)>();
        long cursor = 0;
        while (true)
        {
            var events = await queue.ReadEventsAsync(jobId, cursor, 1_000, cancellationToken).ConfigureAwait(false);
            foreach (var e in events)
            {
                if (e.Kind == JobEventKind.Sink && Parse(e.Message) is { } record)
                    log.Add((e.At, record));
            }
            if (events.Count < 1_000)
                return log;
            cursor = events[^1].Seq;
        }
    }
}
