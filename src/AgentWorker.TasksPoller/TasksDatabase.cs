using System.Text.Json.Nodes;
using AgentWorker.Core.Artifacts;
using AgentWorker.Storage.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace AgentWorker.TasksPoller;

/// <summary>A row of <c>tasks</c>: its id as the database types it (int, uuid, text…) and as text.</summary>
internal sealed record TaskRow(object Id, string IdText, string? Title, string? Description);

/// <summary>How a task's run ended, as written back to the database.</summary>
internal sealed record TaskOutcome(bool Succeeded, int? ExitCode, string Response, string? Error, string JobId, int LastPercent, IReadOnlyList<ArtifactRecord> Artifacts);

/// <summary>
/// The seed's tables, whichever column variants they use (found once by <see cref="SchemaAsync"/>). Text parameters are
/// sent untyped so the server casts them to whatever the column is (text, varchar, integer agent ids, enum states).
/// Connection trouble surfaces as <see cref="NpgsqlException"/>; the data source opens fresh connections afterwards.
/// </summary>
internal sealed class TasksDatabase : IAsyncDisposable
{
    private const int MaxBufferedLogs = 1000;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _agentId;
    private readonly Queue<(string? TaskId, string Level, string Message, string? Metadata, DateTimeOffset At)> _logs = new();
    private TasksSchema? _schema;
    private bool _logsDisabled;

    private TasksDatabase(NpgsqlDataSource dataSource, string agentId)
    {
        _dataSource = dataSource;
        _agentId = agentId;
    }

    /// <summary>Why structured logs stopped going to agent_logs, once they did.</summary>
    public string? LogsDisabledReason { get; private set; }

    /// <summary>Log entries lost because the database was away too long (the buffer holds 1000).</summary>
    public int DroppedLogs { get; private set; }

    public static TasksDatabase Create(string connectionString, string agentId)
    {
        var settings = PostgresConnectionString.Parse(connectionString);
        // A dead server should fail a poll in seconds, not hang it.
        if (settings.Timeout == 15)
            settings.Timeout = 5;
        return new TasksDatabase(NpgsqlDataSource.Create(settings), agentId);
    }

    /// <summary>The schema, found on first success and kept; also makes sure agent_logs exists. Null until then.</summary>
    public TasksSchema? Schema => _schema;

    public async Task<(TasksSchema Schema, bool New)> SchemaAsync(CancellationToken cancellationToken)
    {
        if (_schema is { } known)
            return (known, false);
        var schema = await TasksSchema.DetectAsync(_dataSource, cancellationToken).ConfigureAwait(false);
        try
        {
            await using var create = _dataSource.CreateCommand("""
                CREATE TABLE IF NOT EXISTS agent_logs (
                    id bigserial PRIMARY KEY,
                    agent_id text NOT NULL,
                    task_id text,
                    level text NOT NULL,
                    message text NOT NULL,
                    metadata jsonb,
                    "timestamp" timestamptz NOT NULL DEFAULT now())
                """);
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            DisableLogs($"cannot create agent_logs: {e.MessageText}");
        }
        _schema = schema;
        return (schema, true);
    }

    public async Task<TaskRow?> LatestTaskAsync(CancellationToken cancellationToken)
    {
        var schema = _schema!;
        var title = schema.TaskColumns.Contains("title") ? "title::text" : "NULL::text";
        var description = schema.TaskColumns.Contains("description") ? "description::text" : "NULL::text";
        await using var command = _dataSource.CreateCommand(
            $"SELECT id, id::text, {title}, {description} FROM tasks WHERE agent_id = $1 ORDER BY tasks.created_at DESC NULLS LAST, tasks.id DESC LIMIT 1");
        command.Parameters.Add(Untyped(_agentId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            return null;
        return new TaskRow(reader.GetValue(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3));
    }

    public async Task<double?> MaxProgressAsync(TaskRow task, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""SELECT max("{_schema!.ProgressColumn}")::float8 FROM task_progress WHERE task_id = $1""");
        command.Parameters.Add(new NpgsqlParameter { Value = task.Id });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is double max ? max : null;
    }

    public async Task InsertProgressAsync(TaskRow task, int percent, string message, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await InsertProgressAsync(connection, null, task, percent, message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes the end of a task in one transaction: a progress row and a binary_file_metadata row per stored artifact, the
    /// status and response, and the final 100 row. Returns warnings for parts the table shapes refused (those are skipped).
    /// </summary>
    public async Task<IReadOnlyList<string>> FinishAsync(TaskRow task, TaskOutcome outcome, CancellationToken cancellationToken)
    {
        var schema = _schema!;
        var warnings = new List<string>();
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var stored = outcome.Artifacts.Where(a => a.Key is not null).ToList();
        foreach (var artifact in stored)
        {
            await InsertProgressAsync(connection, transaction, task, outcome.LastPercent, $"uploaded screenshot: {artifact.Key}", cancellationToken).ConfigureAwait(false);
            if (schema.FileColumns is { } columns)
                await OptionalAsync(transaction, "binary_file_metadata", warnings, () => InsertFileAsync(connection, transaction, columns, task, artifact, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        await OptionalAsync(transaction, "tasks", warnings, () => UpdateTaskAsync(connection, transaction, schema, task, outcome, stored.Count, cancellationToken), cancellationToken).ConfigureAwait(false);
        var summary = outcome.Succeeded
            ? $"completed (return_code={outcome.ExitCode}, screenshots={stored.Count})"
            : $"failed: {outcome.Error}";
        await InsertProgressAsync(connection, transaction, task, 100, summary, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return warnings;
    }

    /// <summary>Queues a structured log entry for agent_logs (the seed's MongoDB collection); written by <see cref="FlushLogsAsync"/>.</summary>
    public void Log(string? taskId, string level, string message, JsonObject? metadata = null)
    {
        if (_logsDisabled)
            return;
        lock (_logs)
        {
            if (_logs.Count == MaxBufferedLogs)
            {
                _logs.Dequeue();
                DroppedLogs++;
            }
            _logs.Enqueue((taskId, level, message, metadata?.ToJsonString(), DateTimeOffset.UtcNow));
        }
    }

    /// <summary>Writes queued log entries; they stay queued when the database is away.</summary>
    public async Task FlushLogsAsync(CancellationToken cancellationToken)
    {
        if (_schema is null || _logsDisabled)
            return;
        (string? TaskId, string Level, string Message, string? Metadata, DateTimeOffset At)[] batch;
        lock (_logs)
            batch = [.. _logs];
        if (batch.Length == 0)
            return;
        await using var command = _dataSource.CreateCommand("""
            INSERT INTO agent_logs (agent_id, task_id, level, message, metadata, "timestamp")
            SELECT $1, t, l, m, md::jsonb, ts FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS u(t, l, m, md, ts)
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = _agentId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.TaskId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.Level).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.Message).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.Metadata).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.At).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedColumn
            or PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.DatatypeMismatch or PostgresErrorCodes.InvalidTextRepresentation)
        {
            DisableLogs($"agent_logs refused the entries: {e.MessageText}");
            return;
        }
        lock (_logs)
        {
            for (var i = 0; i < batch.Length && _logs.Count > 0; i++)
                _logs.Dequeue();
        }
    }

    /// <summary>After a database error: drops pooled connections, so the next operation connects afresh.</summary>
    public void Reset() => _dataSource.Clear();

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    private void DisableLogs(string reason)
    {
        _logsDisabled = true;
        LogsDisabledReason = reason;
        lock (_logs)
            _logs.Clear();
    }

    private async Task InsertProgressAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, TaskRow task, int percent, string message, CancellationToken cancellationToken)
    {
        var schema = _schema!;
        var time = schema.TimeColumn is { } column ? $", \"{column}\"" : "";
        var now = schema.TimeColumn is null ? "" : ", now()";
        await using var command = new NpgsqlCommand(
            $"""INSERT INTO task_progress (task_id, agent_id, "{schema.ProgressColumn}", message{time}) VALUES ($1, $2, $3, $4{now})""", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = task.Id });
        command.Parameters.Add(Untyped(_agentId));
        command.Parameters.Add(new NpgsqlParameter { Value = percent });
        command.Parameters.Add(Untyped(message));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task InsertFileAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlySet<string> columns, TaskRow task, ArtifactRecord artifact, CancellationToken cancellationToken)
    {
        var values = new List<(string Column, NpgsqlParameter? Value)>();
        void Put(object? value, params string[] names)
        {
            if (names.FirstOrDefault(columns.Contains) is { } column)
                values.Add((column, value switch { null => null, string text => Untyped(text), _ => new NpgsqlParameter { Value = value } }));
        }
        Put(task.Id, "task_id");
        Put(_agentId, "agent_id");
        Put(artifact.Bucket, "bucket", "bucket_name");
        Put(artifact.Key, "object_path", "object_key", "object_name", "key", "path", "file_path", "storage_path");
        Put(Path.GetFileName(artifact.Name), "file_name", "filename", "name", "original_name");
        Put(artifact.Size, "file_size", "size", "size_bytes");
        Put(artifact.ContentType, "content_type", "mime_type");
        Put(artifact.Sha256, "sha256", "checksum");
        Put(null, "created_at", "uploaded_at", "timestamp");
        if (columns.Contains("metadata"))
        {
            values.Add(("metadata", Untyped(new JsonObject
            {
                ["bucket"] = artifact.Bucket, ["key"] = artifact.Key, ["name"] = artifact.Name, ["size"] = artifact.Size,
                ["sha256"] = artifact.Sha256, ["content_type"] = artifact.ContentType,
            }.ToJsonString())));
        }
        if (!values.Any(v => v.Value?.Value is string key && key == artifact.Key))
            throw new TasksSchemaException("binary_file_metadata has no column for the object key (object_path, object_key, key, path…)");
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        var placeholders = new List<string>();
        foreach (var (_, value) in values)
        {
            if (value is null)
            {
                placeholders.Add("now()");
                continue;
            }
            command.Parameters.Add(value);
            placeholders.Add($"${command.Parameters.Count}");
        }
        command.CommandText = $"INSERT INTO binary_file_metadata ({string.Join(", ", values.Select(v => $"\"{v.Column}\""))}) VALUES ({string.Join(", ", placeholders)})";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task UpdateTaskAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, TasksSchema schema, TaskRow task, TaskOutcome outcome, int screenshots, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        command.Parameters.Add(new NpgsqlParameter { Value = task.Id });
        var sets = new List<string>();
        if (schema.TaskColumns.Contains("status"))
        {
            command.Parameters.Add(Untyped(outcome.Succeeded ? "completed" : "failed"));
            sets.Add($"status = ${command.Parameters.Count}");
        }
        if (schema.ResponseColumn is { } responseColumn)
        {
            command.Parameters.Add(Untyped(outcome.Response));
            sets.Add($"\"{responseColumn}\" = ${command.Parameters.Count}");
        }
        if (schema.MetadataType is { } metadataType)
        {
            var patch = new JsonObject
            {
                [outcome.Succeeded ? "completed_at" : "failed_at"] = DateTimeOffset.UtcNow.ToString("O"),
                ["return_code"] = outcome.ExitCode,
                ["screenshots"] = screenshots,
                ["job_id"] = outcome.JobId,
            };
            if (outcome.Error is not null)
                patch["error"] = outcome.Error;
            if (schema.ResponseColumn is null)
                patch["response"] = outcome.Response;
            command.Parameters.Add(new NpgsqlParameter { Value = patch.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
            sets.Add($"metadata = (COALESCE(metadata::jsonb, '{{}}'::jsonb) || ${command.Parameters.Count})::{metadataType}");
        }
        if (schema.TaskColumns.Contains("updated_at"))
            sets.Add("updated_at = now()");
        if (sets.Count == 0)
            return;
        command.CommandText = $"UPDATE tasks SET {string.Join(", ", sets)} WHERE id = $1";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a write the table's shape may refuse (a status enum without our word, an unexpected column type) in a savepoint.</summary>
    private static async Task OptionalAsync(NpgsqlTransaction transaction, string table, List<string> warnings, Func<Task> write, CancellationToken cancellationToken)
    {
        await transaction.SaveAsync("optional", cancellationToken).ConfigureAwait(false);
        try
        {
            await write().ConfigureAwait(false);
            await transaction.ReleaseAsync("optional", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PostgresException or TasksSchemaException)
        {
            await transaction.RollbackAsync("optional", cancellationToken).ConfigureAwait(false);
            warnings.Add($"{table}: {(e as PostgresException)?.MessageText ?? e.Message}");
        }
    }

    private static NpgsqlParameter Untyped(string value) => new() { Value = value, NpgsqlDbType = NpgsqlDbType.Unknown };
}
