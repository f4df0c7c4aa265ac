using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

// Mapping between rows and the core records. Times are stored as Unix milliseconds so SQL can compare them.
public sealed partial class SqliteJobQueue
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private const string JobColumns = "id, state, attempts, spec, result, error, cancel_requested, run_at, created_at, updated_at, finished_at";

    private static JobRecord? ReadJob(SqliteSession session, string id)
    {
        var jobs = session.Query($"SELECT {JobColumns} FROM jobs WHERE id = $id", [("$id", id)], ReadJob);
        return jobs.Count == 0 ? null : jobs[0] with { AttemptHistory = ReadAttempts(session, id) };
    }

    private static List<AttemptRecord> ReadAttempts(SqliteSession session, string id) =>
        session.Query(
            "SELECT job_id, number, worker, started_at, finished_at, outcome, exit_code, error FROM job_attempts WHERE job_id = $id ORDER BY id",
            [("$id", id)],
            ReadAttempt);

    /// <summary>Runs a query selecting <see cref="JobColumns"/> and attaches each job's attempt history (one more query for all of them).</summary>
    private static List<JobRecord> ReadJobs(SqliteSession session, string sql, IReadOnlyList<(string Name, object? Value)> parameters)
    {
        var jobs = session.Query(sql, parameters, ReadJob);
        if (jobs.Count == 0)
            return jobs;
        var attempts = session.Query(
            """
            SELECT job_id, number, worker, started_at, finished_at, outcome, exit_code, error
            FROM job_attempts
            WHERE job_id IN (SELECT value FROM json_each($ids))
            ORDER BY id
            """,
            [("$ids", JsonSerializer.Serialize(jobs.Select(job => job.Id), Json))],
            reader => (JobId: reader.GetString(0), Attempt: ReadAttempt(reader)));
        var history = attempts.ToLookup(row => row.JobId, row => row.Attempt, StringComparer.Ordinal);
        return jobs.ConvertAll(job => job with { AttemptHistory = [.. history[job.Id]] });
    }

    private static JobRecord ReadJob(SqliteDataReader reader) => new()
    {
        Spec = JsonSerializer.Deserialize<JobSpec>(reader.GetString(3), Json)
            ?? throw new InvalidDataException($"job {reader.GetString(0)}: stored spec is null"),
        State = ParseState(reader.GetString(1)),
        Attempts = reader.GetInt32(2),
        Result = StringOrNull(reader, 4) is { } result ? JsonSerializer.Deserialize<JobResult>(result, Json) : null,
        Error = StringOrNull(reader, 5),
        CancelRequested = reader.GetBoolean(6),
        RunAt = Time(reader.GetInt64(7)),
        CreatedAt = Time(reader.GetInt64(8)),
        UpdatedAt = Time(reader.GetInt64(9)),
        FinishedAt = Time(Int64OrNull(reader, 10)),
    };

    private static AttemptRecord ReadAttempt(SqliteDataReader reader) => new(
        Number: reader.GetInt32(1),
        Worker: reader.GetString(2),
        StartedAt: Time(reader.GetInt64(3)),
        FinishedAt: Time(Int64OrNull(reader, 4)),
        Outcome: StringOrNull(reader, 5),
        ExitCode: (int?)Int64OrNull(reader, 6),
        Error: StringOrNull(reader, 7));

    private static JobEvent ReadEvent(SqliteDataReader reader) => new(
        Seq: reader.GetInt64(0),
        JobId: reader.GetString(1),
        Attempt: reader.GetInt32(2),
        At: Time(reader.GetInt64(3)),
        Kind: ParseKind(reader.GetString(4)),
        Message: reader.GetString(5),
        Stream: StringOrNull(reader, 6));

    private static void InsertEvent(SqliteSession session, string jobId, int attempt, DateTimeOffset at, NewJobEvent jobEvent) =>
        session.Execute(
            "INSERT INTO job_events (job_id, attempt, at, kind, message, stream) VALUES ($job_id, $attempt, $at, $kind, $message, $stream)",
            [
                ("$job_id", jobId),
                ("$attempt", attempt),
                ("$at", Ms(at)),
                ("$kind", jobEvent.Kind.Name()),
                ("$message", jobEvent.Message),
                ("$stream", jobEvent.Stream),
            ]);

    /// <summary>Records a state change as "state" or "state: reason", so the event log tells the job's story.</summary>
    private static void AppendState(SqliteSession session, string jobId, int attempt, JobState state, string? reason, DateTimeOffset at)
    {
        var message = string.IsNullOrWhiteSpace(reason) ? state.Name() : $"{state.Name()}: {reason}";
        InsertEvent(session, jobId, attempt, at, new NewJobEvent(JobEventKind.State, message));
    }

    // GetFieldValue<string?> and friends throw on NULL in Microsoft.Data.Sqlite rather than returning null.
    private static string? StringOrNull(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static long? Int64OrNull(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);

    private static JobEventKind ParseKind(string name) =>
        JobEventKinds.TryParse(name, out var kind) ? kind : throw new InvalidDataException($"unknown event kind '{name}' in the SQLite queue");

    private static JobState ParseState(string name) =>
        JobStates.TryParse(name, out var state) ? state : throw new InvalidDataException($"unknown job state '{name}' in the SQLite queue");

    private static long Ms(DateTimeOffset time) => time.ToUnixTimeMilliseconds();

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static DateTimeOffset? Time(long? ms) => ms is { } value ? Time(value) : null;
}
