using System.Data.Common;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using Npgsql;
using NpgsqlTypes;

namespace AgentWorker.Storage.Postgres;

// Mapping between rows and the core records. The attempt history travels with each job row as a JSON array
// built by a correlated subquery, so a job (or a page of jobs) is read in one statement.
public sealed partial class PostgresJobQueue
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private const string History =
        """
        coalesce((SELECT json_agg(json_build_object(
                'number', a.number, 'worker', a.worker, 'startedAt', a.started_at, 'finishedAt', a.finished_at,
                'outcome', a.outcome, 'exitCode', a.exit_code, 'error', a.error) ORDER BY a.id)
            FROM job_attempts a WHERE a.job_id = j.id), '[]')::text
        """;

    /// <summary>What <see cref="ReadJob"/> reads, for a query or RETURNING clause whose jobs row is aliased <c>j</c>.</summary>
    private const string JobColumns =
        $"j.id, j.state, j.attempts, j.spec, j.result, j.error, j.cancel_requested, j.run_at, j.created_at, j.updated_at, j.finished_at, {History}";

    private static JobRecord ReadJob(DbDataReader reader) => new()
    {
        Spec = JsonSerializer.Deserialize<JobSpec>(reader.GetString(3), Json)
            ?? throw new InvalidDataException($"job {reader.GetString(0)}: stored spec is null"),
        State = ParseState(reader.GetString(1)),
        Attempts = reader.GetInt32(2),
        Result = reader.IsDBNull(4) ? null : JsonSerializer.Deserialize<JobResult>(reader.GetString(4), Json),
        Error = reader.IsDBNull(5) ? null : reader.GetString(5),
        CancelRequested = reader.GetBoolean(6),
        RunAt = reader.GetFieldValue<DateTimeOffset>(7),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(8),
        UpdatedAt = reader.GetFieldValue<DateTimeOffset>(9),
        FinishedAt = reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10),
        AttemptHistory = JsonSerializer.Deserialize<AttemptRecord[]>(reader.GetString(11), Json) ?? [],
    };

    private static async Task<List<JobRecord>> ReadJobsAsync(DbDataReader reader, CancellationToken cancellationToken)
    {
        var jobs = new List<JobRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            jobs.Add(ReadJob(reader));
        return jobs;
    }

    private static JobEvent ReadEvent(DbDataReader reader) => new(
        Seq: reader.GetInt64(0),
        JobId: reader.GetString(1),
        Attempt: reader.GetInt32(2),
        At: reader.GetFieldValue<DateTimeOffset>(3),
        Kind: ParseKind(reader.GetString(4)),
        Message: reader.GetString(5),
        Stream: reader.IsDBNull(6) ? null : reader.GetString(6));

    private static JobState ParseState(string name) =>
        JobStates.TryParse(name, out var state) ? state : throw new InvalidDataException($"unknown job state '{name}' in the PostgreSQL queue");

    // The same words as the enum's JSON names, so events read the same on every backend.
    private static string KindName(JobEventKind kind) => kind switch
    {
        JobEventKind.State => "state",
        JobEventKind.Log => "log",
        JobEventKind.Progress => "progress",
        JobEventKind.Finding => "finding",
        JobEventKind.Artifact => "artifact",
        JobEventKind.Sink => "sink",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown event kind"),
    };

    private static JobEventKind ParseKind(string name) => name switch
    {
        "state" => JobEventKind.State,
        "log" => JobEventKind.Log,
        "progress" => JobEventKind.Progress,
        "finding" => JobEventKind.Finding,
        "artifact" => JobEventKind.Artifact,
        "sink" => JobEventKind.Sink,
        _ => throw new InvalidDataException($"unknown event kind '{name}' in the PostgreSQL queue"),
    };

    /// <summary>"state" or "state: reason", so the event log tells the job's story.</summary>
    private static string StateMessage(JobState state, string? reason) =>
        string.IsNullOrWhiteSpace(reason) ? state.Name() : $"{state.Name()}: {reason}";

    private static NpgsqlParameter Text(string name, string? value) => new(name, NpgsqlDbType.Text) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Jsonb(string name, object? value) =>
        new(name, NpgsqlDbType.Jsonb) { Value = value is null ? DBNull.Value : JsonSerializer.Serialize(value, Json) };

    private static NpgsqlParameter Integer(string name, int? value) => new(name, NpgsqlDbType.Integer) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Time(string name, DateTimeOffset? value) =>
        new(name, NpgsqlDbType.TimestampTz) { Value = value is { } time ? time.ToUniversalTime() : DBNull.Value };

    private static NpgsqlParameter Uuid(string name, Guid value) => new(name, NpgsqlDbType.Uuid) { Value = value };
}
