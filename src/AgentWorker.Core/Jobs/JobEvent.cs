using System.Text.Json.Serialization;

namespace AgentWorker.Core.Jobs;

[JsonConverter(typeof(JsonStringEnumConverter<JobEventKind>))]
public enum JobEventKind
{
    [JsonStringEnumMemberName("state")] State,
    [JsonStringEnumMemberName("log")] Log,
    [JsonStringEnumMemberName("progress")] Progress,
    [JsonStringEnumMemberName("finding")] Finding,
    [JsonStringEnumMemberName("artifact")] Artifact,

    /// <summary>A delivery to a result sink (webhook, results table): one event per try, the message a JSON <c>DeliveryRecord</c>.</summary>
    [JsonStringEnumMemberName("sink")] Sink,
}

/// <summary>An event to append to a job's record.</summary>
public sealed record NewJobEvent(JobEventKind Kind, string Message, string? Stream = null);

/// <summary>A stored event: state change, log line, progress, finding or artifact, in append order.</summary>
public sealed record JobEvent(long Seq, string JobId, int Attempt, DateTimeOffset At, JobEventKind Kind, string Message, string? Stream);
