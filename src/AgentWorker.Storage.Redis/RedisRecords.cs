using System.Globalization;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

/// <summary>Mapping between what the scripts return and the core records. Times are Unix milliseconds.</summary>
internal static class RedisRecords
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Reads a script's job reply: <c>{HGETALL of the job hash, its attempts list}</c>.</summary>
    public static JobRecord ReadJob(RedisResult reply) => ReadJob(null, reply);

    public static JobRecord ReadJob(string? id, RedisResult reply)
    {
        var parts = (RedisResult[])reply!;
        var pairs = (RedisResult[])parts[0]!;
        var fields = new Dictionary<string, string>(pairs.Length / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < pairs.Length; i += 2)
            fields[(string)pairs[i]!] = (string)pairs[i + 1]!;
        string? Field(string name) => fields.GetValueOrDefault(name);
        string Required(string name) => Field(name) ?? throw new InvalidDataException($"job {id ?? "?"}: field '{name}' missing in the Redis queue");

        var spec = ReadSpec(id, Required("spec"));
        id = spec.Id;
        var state = Required("state");
        return new JobRecord
        {
            Spec = spec,
            State = JobStates.TryParse(state, out var parsed) ? parsed : throw new InvalidDataException($"job {id}: unknown state '{state}' in the Redis queue"),
            Attempts = int.Parse(Required("attempts"), CultureInfo.InvariantCulture),
            RunAt = Time(Required("run_at")),
            CreatedAt = Time(Required("created_at")),
            UpdatedAt = Time(Required("updated_at")),
            FinishedAt = Field("finished_at") is { } finished ? Time(finished) : null,
            Error = Field("error"),
            Result = Field("result") is { } result ? JsonSerializer.Deserialize<JobResult>(result, Json) : null,
            CancelRequested = Field("cancel") == "1",
            AttemptHistory = [.. ((RedisResult[])parts[1]!).Select(attempt => ReadAttempt((string)attempt!))],
        };
    }

    public static JobSpec ReadSpec(string? id, string json) =>
        JsonSerializer.Deserialize<JobSpec>(json, Json) ?? throw new InvalidDataException($"job {id ?? "?"}: stored spec is null");

    public static JobEvent ReadEvent(string jobId, StreamEntry entry)
    {
        var id = (string)entry.Id!;
        return new JobEvent(
            Seq: long.Parse(id.AsSpan(id.IndexOf('-', StringComparison.Ordinal) + 1), CultureInfo.InvariantCulture),
            JobId: jobId,
            Attempt: (int)entry["a"],
            At: Time((string)entry["t"]!),
            Kind: ParseKind((string?)entry["k"]),
            Message: (string?)entry["m"] ?? "",
            Stream: (string?)entry["s"]);
    }

    private static JobEventKind ParseKind(string? name) =>
        JobEventKinds.TryParse(name, out var kind) ? kind : throw new InvalidDataException($"unknown event kind '{name}' in the Redis queue");

    // Attempts are JSON objects whose values are all strings (see RedisScripts): Lua's cjson would print large numbers inexactly.
    private static AttemptRecord ReadAttempt(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        string? Get(string name) => root.TryGetProperty(name, out var value) ? value.GetString() : null;
        return new AttemptRecord(
            Number: int.Parse(Get("n")!, CultureInfo.InvariantCulture),
            Worker: Get("w") ?? "",
            StartedAt: Time(Get("s")!),
            FinishedAt: Get("f") is { } finished ? Time(finished) : null,
            Outcome: Get("o"),
            ExitCode: Get("x") is { } exit ? int.Parse(exit, CultureInfo.InvariantCulture) : null,
            Error: Get("e"));
    }

    private static DateTimeOffset Time(string ms) => DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(ms, CultureInfo.InvariantCulture));
}
