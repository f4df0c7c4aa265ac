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

    /// <summary>A connection the agent asked the egress proxy for, allowed or refused: the message a JSON <c>EgressEvent</c>.</summary>
    [JsonStringEnumMemberName("egress")] Egress,

    /// <summary>A request the agent sent through the model gateway, answered or refused: the message a JSON <c>ModelEvent</c>.</summary>
    [JsonStringEnumMemberName("model")] Model,
}

public static class JobEventKinds
{
    /// <summary>Stored name of a kind, the same as its JSON name, e.g. <c>log</c>.</summary>
    public static string Name(this JobEventKind kind) => kind switch
    {
        JobEventKind.State => "state",
        JobEventKind.Log => "log",
        JobEventKind.Progress => "progress",
        JobEventKind.Finding => "finding",
        JobEventKind.Artifact => "artifact",
        JobEventKind.Sink => "sink",
        JobEventKind.Egress => "egress",
        JobEventKind.Model => "model",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown event kind"),
    };

    public static bool TryParse(string? name, out JobEventKind kind)
    {
        JobEventKind? known = name switch
        {
            "state" => JobEventKind.State,
            "log" => JobEventKind.Log,
            "progress" => JobEventKind.Progress,
            "finding" => JobEventKind.Finding,
            "artifact" => JobEventKind.Artifact,
            "sink" => JobEventKind.Sink,
            "egress" => JobEventKind.Egress,
            "model" => JobEventKind.Model,
            _ => null,
        };
        kind = known ?? default;
        return known is not null;
    }
}

/// <summary>An event to append to a job's record.</summary>
public sealed record NewJobEvent(JobEventKind Kind, string Message, string? Stream = null);

/// <summary>A stored event: state change, log line, progress, finding, artifact, sink delivery, egress decision or model request, in append order.</summary>
public sealed record JobEvent(long Seq, string JobId, int Attempt, DateTimeOffset At, JobEventKind Kind, string Message, string? Stream);
