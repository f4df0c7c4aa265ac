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

    /// <summary>Reads <see cref="JobColumns"/>, which start at column <paramref name="first"/>.</summary>
    private static JobRecord ReadJob(DbDataReader reader, int first = 0) => new()
    {
        Spec = JsonSerializer.Deserialize<JobSpec>(reader.GetString(first + 3), Json)
            ?? throw new InvalidDataException($"job {reader.GetString(first)}: stored spec is null"),
        State = ParseState(reader.GetString(first + 1)),
        Attempts = reader.GetInt32(first + 2),
        Result = reader.IsDBNull(first + 4) ? null : JsonSerializer.Deserialize<JobResult>(reader.GetString(first + 4), Json),
        Error = reader.IsDBNull(first + 5) ? null : reader.GetString(first + 5),
        CancelRequested = reader.GetBoolean(first + 6),
        RunAt = reader.GetFieldValue<DateTimeOffset>(first + 7),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(first + 8),
        UpdatedAt = reader.GetFieldValue<DateTimeOffset>(first + 9),
        FinishedAt = reader.IsDBNull(first + 10) ? null : reader.GetFieldValue<DateTimeOffset>(first + 10),
        AttemptHistory = JsonSerializer.Deserialize<AttemptRecord[]>(reader.GetString(first + 11), Json) ?? [],
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

    private static JobEventKind ParseKind(string name) =>
        JobEventKinds.TryParse(name, out var kind) ? kind : throw new InvalidDataException($"unknown event kind '{name}' in the PostgreSQL queue");

    /// <summary>"state" or "state: reason", so the event log tells the job's story.</summary>
    private static string StateMessage(JobState state, string? reason) =>
        string.IsNullOrWhiteSpace(reason) ? state.Name() : $"{state.Name()}: {reason}";

    private static NpgsqlParameter Text(string name, string? value) => new(name, NpgsqlDbType.Text) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Jsonb(string name, object? value) =>
        new(name, NpgsqlDbType.Jsonb) { Value = value is null ? DBNull.Value : JsonSerializer.Serialize(value, Json) };

    private static NpgsqlParameter Integer(string name, int? value) => new(name, NpgsqlDbType.Integer) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Time(string name, DateTimeOffset? value) =>
        new(name, NpgsqlDbType.TimestampTz) { Value = value is { } time ? time.ToUniversalTime() : DBNull.Value };

    private static NpgsqlParameter ArrayOf<T>(string name, NpgsqlDbType elementType, IEnumerable<T> values) =>
        new(name, NpgsqlDbType.Array | elementType) { Value = values.ToArray() };

    private static NpgsqlParameter Uuid(string name, Guid value) => new(name, NpgsqlDbType.Uuid) { Value = value };
}
