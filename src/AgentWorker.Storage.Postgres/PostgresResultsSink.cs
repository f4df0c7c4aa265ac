using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Sinks;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace AgentWorker.Storage.Postgres;

/// <summary>
/// The results table: a row per finished job with the columns of the seed's <c>audit_results</c>
/// (<c>task_id, agent_id, repo_url, status, health_score, findings_errors, findings_warnings, findings_info,
/// duration_ms, completed_at, error_message</c>) and this worker's own (state, mode, findings as JSON, commits, …).
/// A missing table is created; an existing one is used as it is, each row filling the columns it has. Writing the
/// same outcome twice (a retried delivery) adds no second row.
/// </summary>
public sealed partial class PostgresResultsSink : IJobSink, IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string? _schema;
    private readonly string _tableName;
    private readonly string _table;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _ensuring = new(1, 1);
    private HashSet<string>? _columns;
    private int _warned;

    private PostgresResultsSink(NpgsqlDataSource dataSource, string table, ILogger logger)
    {
        _dataSource = dataSource;
        var parts = table.Split('.');
        (_schema, _tableName) = parts.Length == 2 ? (parts[0], parts[1]) : (null, parts[0]);
        _table = string.Join('.', parts.Select(p => $"\"{p}\""));
        _logger = logger;
        Name = $"results table {table}";
    }

    /// <summary><paramref name="table"/> is <c>[schema.]name</c> of letters, digits and <c>_</c> (validated by the caller's configuration).</summary>
    public static PostgresResultsSink Create(string connectionString, string table, ILogger logger)
    {
        var settings = PostgresConnectionString.Parse(connectionString);
        settings.Timezone = "UTC";
        return new PostgresResultsSink(NpgsqlDataSource.Create(settings), table, logger);
    }

    public string Name { get; }

    public bool Accepts(JobNotice notice) => notice.Job.State.IsTerminal();

    public async Task DeliverAsync(JobNotice notice, CancellationToken cancellationToken)
    {
        var columns = await EnsureTableAsync(cancellationToken).ConfigureAwait(false);
        var all = Row(notice.Job).ToList();
        var row = all.Where(c => columns.Contains(c.Name)).ToList();
        if (row.Count < all.Count && Interlocked.Exchange(ref _warned, 1) == 0)
            LogMissingColumns(_logger, Name, string.Join(", ", all.Select(c => c.Name).Where(c => !columns.Contains(c))));
        // The same job finishing at the same moment is the same outcome: a retry after a lost answer adds nothing.
        var duplicate = columns.Contains("completed_at") ? "task_id = @task_id AND completed_at = @completed_at" : "task_id = @task_id";
        var sql = $"""
            INSERT INTO {_table} ({string.Join(", ", row.Select(c => $"\"{c.Name}\""))})
            SELECT {string.Join(", ", row.Select(c => "@" + c.Name))}
            WHERE NOT EXISTS (SELECT 1 FROM {_table} WHERE {duplicate})
            """;
        await using var command = _dataSource.CreateCommand(sql);
        foreach (var column in row)
            command.Parameters.Add(new NpgsqlParameter(column.Name, column.Type) { Value = column.Value ?? DBNull.Value });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _dataSource.Dispose();
        _ensuring.Dispose();
    }

    /// <summary>Creates the table when missing and learns its columns, once per process.</summary>
    private async Task<HashSet<string>> EnsureTableAsync(CancellationToken cancellationToken)
    {
        if (_columns is { } known)
            return known;
        await _ensuring.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_columns is not null)
                return _columns;
            var columns = await ReadColumnsAsync(cancellationToken).ConfigureAwait(false);
            if (columns.Count == 0)
            {
                // A table of its own; an existing one (the seed's, say) is never altered.
                await using (var create = _dataSource.CreateCommand($"""
                    CREATE TABLE IF NOT EXISTS {_table} (
                        id                bigserial   PRIMARY KEY,
                        task_id           text        NOT NULL,
                        agent_id          text        NOT NULL,
                        repo_url          text        NOT NULL,
                        branch            text,
                        mode              text        NOT NULL,
                        state             text        NOT NULL,
                        status            text        NOT NULL,
                        health_score      integer,
                        findings_total    integer     NOT NULL DEFAULT 0,
                        findings_critical integer     NOT NULL DEFAULT 0,
                        findings_errors   integer     NOT NULL DEFAULT 0,
                        findings_warnings integer     NOT NULL DEFAULT 0,
                        findings_info     integer     NOT NULL DEFAULT 0,
                        findings          jsonb       NOT NULL DEFAULT '[]',
                        exit_code         integer,
                        attempts          integer     NOT NULL,
                        commit_before     text,
                        commit_after      text,
                        queued_at         timestamptz NOT NULL,
                        started_at        timestamptz,
                        completed_at      timestamptz NOT NULL,
                        duration_ms       bigint,
                        error_message     text,
                        metadata          jsonb,
                        recorded_at       timestamptz NOT NULL DEFAULT now()
                    );
                    CREATE INDEX IF NOT EXISTS "{_tableName}_task_id_idx" ON {_table} (task_id);
                    """))
                {
                    await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                columns = await ReadColumnsAsync(cancellationToken).ConfigureAwait(false);
            }
            if (!columns.Contains("task_id"))
                throw new SinkException($"{Name} has no task_id column", transient: false);
            return _columns = columns;
        }
        finally
        {
            _ensuring.Release();
        }
    }

    private async Task<HashSet<string>> ReadColumnsAsync(CancellationToken cancellationToken)
    {
        await using var read = _dataSource.CreateCommand(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = coalesce(@schema, current_schema()) AND table_name = @table");
        read.Parameters.Add(new NpgsqlParameter("schema", NpgsqlDbType.Text) { Value = (object?)_schema ?? DBNull.Value });
        read.Parameters.Add(new NpgsqlParameter("table", NpgsqlDbType.Text) { Value = _tableName });
        var columns = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            columns.Add(reader.GetString(0));
        return columns;
    }

    private static IEnumerable<(string Name, object? Value, NpgsqlDbType Type)> Row(JobRecord job)
    {
        var result = job.Result;
        var findings = result?.Findings ?? [];
        int Count(params string[] severities) => findings.Count(f => severities.Contains(f.Severity));
        var startedAt = job.AttemptHistory.Count > 0 ? job.AttemptHistory[^1].StartedAt : (DateTimeOffset?)null;
        var completedAt = job.FinishedAt ?? job.UpdatedAt;
        yield return ("task_id", job.Id, NpgsqlDbType.Text);
        yield return ("agent_id", result?.Receipt?.Agent.Id ?? job.Spec.Agent ?? "", NpgsqlDbType.Text);
        yield return ("repo_url", RepoUrls.WithoutCredentials(job.Spec.Repo.Url), NpgsqlDbType.Text);
        yield return ("branch", job.Spec.Repo.Branch, NpgsqlDbType.Text);
        yield return ("mode", job.Spec.Mode == JobMode.Apply ? "apply" : "dry_run", NpgsqlDbType.Text);
        yield return ("state", job.State.Name(), NpgsqlDbType.Text);
        // The seed's words: success, timeout or error.
        yield return ("status", job.State switch { JobState.Succeeded => "success", JobState.TimedOut => "timeout", _ => "error" }, NpgsqlDbType.Text);
        yield return ("health_score", result?.HealthScore, NpgsqlDbType.Integer);
        yield return ("findings_total", findings.Count, NpgsqlDbType.Integer);
        yield return ("findings_critical", Count("critical"), NpgsqlDbType.Integer);
        yield return ("findings_errors", Count("high"), NpgsqlDbType.Integer);
        yield return ("findings_warnings", Count("medium", "low"), NpgsqlDbType.Integer);
        yield return ("findings_info", Count("info"), NpgsqlDbType.Integer);
        yield return ("findings", JsonSerializer.Serialize(findings, ResultJson.Options), NpgsqlDbType.Jsonb);
        yield return ("exit_code", result?.ExitCode, NpgsqlDbType.Integer);
        yield return ("attempts", job.Attempts, NpgsqlDbType.Integer);
        yield return ("commit_before", result?.Changes?.CommitBefore, NpgsqlDbType.Text);
        yield return ("commit_after", result?.Changes?.CommitAfter, NpgsqlDbType.Text);
        yield return ("queued_at", job.CreatedAt.ToUniversalTime(), NpgsqlDbType.TimestampTz);
        yield return ("started_at", startedAt?.ToUniversalTime(), NpgsqlDbType.TimestampTz);
        yield return ("completed_at", completedAt.ToUniversalTime(), NpgsqlDbType.TimestampTz);
        yield return ("duration_ms", startedAt is { } started ? (long)(completedAt - started).TotalMilliseconds : null, NpgsqlDbType.Bigint);
        yield return ("error_message", job.Error, NpgsqlDbType.Text);
        yield return ("metadata", job.Spec.Metadata?.ToJsonString(), NpgsqlDbType.Jsonb);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Sink} has no column(s) {Columns}; rows leave them out")]
    private static partial void LogMissingColumns(ILogger logger, string sink, string columns);
}
