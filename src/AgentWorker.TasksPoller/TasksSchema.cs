using Npgsql;

namespace AgentWorker.TasksPoller;

/// <summary>
/// The shape of the tasks database as found at start: which of the seed's column-name variants <c>task_progress</c> uses,
/// where a task's response goes, and which columns the optional <c>binary_file_metadata</c> table has.
/// </summary>
internal sealed record TasksSchema
{
    public required string ProgressColumn { get; init; }

    /// <summary>Null when task_progress has neither <c>timestamp</c> nor <c>created_at</c> (the column default applies).</summary>
    public string? TimeColumn { get; init; }

    public required IReadOnlySet<string> TaskColumns { get; init; }

    /// <summary>A text column for the response (<c>response</c>, <c>result</c> or <c>ai_response</c>); null: it goes into metadata.</summary>
    public string? ResponseColumn { get; init; }

    /// <summary>The type of <c>tasks.metadata</c> when it is json or jsonb, else null.</summary>
    public string? MetadataType { get; init; }

    /// <summary>Null when the optional table is missing.</summary>
    public IReadOnlySet<string>? FileColumns { get; init; }

    /// <summary>One line for the log: the variants found.</summary>
    public string Describe() =>
        $"task_progress.{ProgressColumn}, task_progress.{TimeColumn ?? "(no time column)"}; response in "
        + (ResponseColumn is not null ? $"tasks.{ResponseColumn}" : MetadataType is not null ? "tasks.metadata.response" : "(nowhere)")
        + (FileColumns is null ? "; no binary_file_metadata table" : $"; binary_file_metadata ({string.Join(", ", FileColumns.Order(StringComparer.Ordinal))})");

    public static async Task<TasksSchema> DetectAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        // to_regclass follows the search path, as the unqualified names in every statement do.
        await using var command = dataSource.CreateCommand("""
            SELECT t.name, a.attname, format_type(a.atttypid, a.atttypmod)
            FROM unnest(ARRAY['tasks', 'task_progress', 'binary_file_metadata']) AS t(name)
            JOIN pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped
            """);
        var columns = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!columns.TryGetValue(reader.GetString(0), out var table))
                    columns[reader.GetString(0)] = table = new Dictionary<string, string>(StringComparer.Ordinal);
                table[reader.GetString(1)] = reader.GetString(2);
            }
        }
        var tasks = columns.GetValueOrDefault("tasks") ?? throw new TasksSchemaException("table tasks does not exist (looked up through the connection's search_path)");
        var progress = columns.GetValueOrDefault("task_progress") ?? throw new TasksSchemaException("table task_progress does not exist (looked up through the connection's search_path)");
        foreach (var required in new[] { "id", "agent_id", "created_at" })
        {
            if (!tasks.ContainsKey(required))
                throw new TasksSchemaException($"table tasks has no column {required}");
        }
        foreach (var required in new[] { "task_id", "agent_id", "message" })
        {
            if (!progress.ContainsKey(required))
                throw new TasksSchemaException($"table task_progress has no column {required}");
        }
        return new TasksSchema
        {
            ProgressColumn = First(progress, "progress_percent", "percent")
                ?? throw new TasksSchemaException("table task_progress has neither progress_percent nor percent"),
            TimeColumn = First(progress, "timestamp", "created_at"),
            TaskColumns = tasks.Keys.ToHashSet(StringComparer.Ordinal),
            ResponseColumn = First(tasks, "response", "result", "ai_response"),
            MetadataType = tasks.GetValueOrDefault("metadata") is "json" or "jsonb" ? tasks["metadata"] : null,
            FileColumns = columns.GetValueOrDefault("binary_file_metadata")?.Keys.ToHashSet(StringComparer.Ordinal),
        };
    }

    private static string? First(Dictionary<string, string> columns, params string[] names) => names.FirstOrDefault(columns.ContainsKey);
}

/// <summary>The tasks database lacks a table or column the poller needs; the message names it.</summary>
internal sealed class TasksSchemaException(string message) : Exception(message);
