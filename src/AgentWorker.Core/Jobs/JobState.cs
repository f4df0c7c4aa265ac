using System.Text.Json.Serialization;

namespace AgentWorker.Core.Jobs;

/// <summary>Lifecycle of a job: queued → running → succeeded | failed | cancelled | timed_out, with retrying and dead.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobState>))]
public enum JobState
{
    [JsonStringEnumMemberName("queued")] Queued,
    [JsonStringEnumMemberName("running")] Running,
    [JsonStringEnumMemberName("retrying")] Retrying,
    [JsonStringEnumMemberName("succeeded")] Succeeded,
    [JsonStringEnumMemberName("failed")] Failed,
    [JsonStringEnumMemberName("cancelled")] Cancelled,
    [JsonStringEnumMemberName("timed_out")] TimedOut,
    [JsonStringEnumMemberName("dead")] Dead,
}

public static class JobStates
{
    /// <summary>Wire name of a state, e.g. <c>timed_out</c>.</summary>
    public static string Name(this JobState state) => state switch
    {
        JobState.Queued => "queued",
        JobState.Running => "running",
        JobState.Retrying => "retrying",
        JobState.Succeeded => "succeeded",
        JobState.Failed => "failed",
        JobState.Cancelled => "cancelled",
        JobState.TimedOut => "timed_out",
        JobState.Dead => "dead",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static bool TryParse(string? name, out JobState state)
    {
        // Every stored record is read through here: the exact lowercase names first, without allocating.
        JobState? known = name switch
        {
            "queued" => JobState.Queued,
            "running" => JobState.Running,
            "retrying" => JobState.Retrying,
            "succeeded" => JobState.Succeeded,
            "failed" => JobState.Failed,
            "cancelled" => JobState.Cancelled,
            "timed_out" => JobState.TimedOut,
            "dead" => JobState.Dead,
            null => null,
            _ => name.Equals(name.ToLowerInvariant(), StringComparison.Ordinal) ? null : Parse(name.ToLowerInvariant()),
        };
        state = known ?? default;
        return known is not null;

        static JobState? Parse(string lower) => TryParse(lower, out var parsed) ? parsed : null;
    }

    /// <summary>True once nothing more will happen to the job without a manual retry.</summary>
    public static bool IsTerminal(this JobState state) =>
        state is JobState.Succeeded or JobState.Failed or JobState.Cancelled or JobState.TimedOut or JobState.Dead;
}
