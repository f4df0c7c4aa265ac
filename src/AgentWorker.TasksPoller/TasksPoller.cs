using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace AgentWorker.TasksPoller;

/// <summary>
/// The CUA seed's worker loop over a PostgreSQL <c>tasks</c> table. Every poll interval it takes the most recent task of its
/// agent; a task whose progress reached 100 is skipped. Otherwise the task becomes a job (id <c>task-&lt;task id&gt;</c>,
/// idempotent, so a restarted worker follows the same job) on the worker's own queue, which the worker pool runs in a
/// fresh directory with a <c>screenshots/</c> artifacts folder. While it runs, a heartbeat progress row goes in every
/// interval; at the end the stored artifacts, the status and response and a final 100 row are written in one transaction.
/// Database errors are logged and retried on the next interval with fresh connections: the loop never ends on them.
/// </summary>
public sealed partial class TasksPoller(IJobQueue queue, TasksPollerOptions options, TimeProvider timeProvider, ILogger<TasksPoller> logger) : BackgroundService
{
    private const int MaxResponseChars = 64 * 1024;

    private readonly TasksDatabase _database = TasksDatabase.Create(options.ConnectionString, options.AgentId);
    private string? _lastSkipped;
    private bool _databaseDown;
    private string? _lastError;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var database = _database;
        LogStarting(logger, options.AgentId, options.Agent, options.PollInterval.TotalSeconds);
        _database.Log(null, "info", $"Agent worker started (agent_id={options.AgentId})");
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PollOnceAsync(stoppingToken).ConfigureAwait(false);
                await _database.FlushLogsAsync(stoppingToken).ConfigureAwait(false);
                Recovered();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                Failed(e, null);
            }
            if (!await WaitAsync(stoppingToken).ConfigureAwait(false))
                break;
        }
        _database.Log(null, "info", "Agent worker stopped");
        try
        {
            using var flush = new CancellationTokenSource(TimeSpan.FromSeconds(5), timeProvider);
            await _database.FlushLogsAsync(flush.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            // The database is away at shutdown: the last log entries go only to the console.
        }
        LogStopped(logger);
    }

    private async Task PollOnceAsync(CancellationToken stopping)
    {
        var (schema, detected) = await _database.SchemaAsync(stopping).ConfigureAwait(false);
        if (detected)
        {
            LogSchema(logger, schema.Describe());
            if (schema.FileColumns is null)
                LogNoFileTable(logger);
            if (schema.ResponseColumn is null && schema.MetadataType is null)
                LogNoResponseColumn(logger);
        }
        if (_database.LogsDisabledReason is { } reason)
            LogLogsDisabled(logger, reason);

        if (await _database.LatestTaskAsync(stopping).ConfigureAwait(false) is not { } task)
            return;
        var progress = await _database.MaxProgressAsync(task, stopping).ConfigureAwait(false);
        if (progress >= 100)
        {
            if (_lastSkipped != task.IdText)
                LogSkipped(logger, task.IdText, progress.Value);
            _lastSkipped = task.IdText;
            return;
        }
        await RunTaskAsync(task, (int)Math.Clamp(progress ?? 0, 0, 99), stopping).ConfigureAwait(false);
    }

    private async Task RunTaskAsync(TaskRow task, int percent, CancellationToken stopping)
    {
        var jobId = JobIdFor(task);
        var prompt = task.Description is { Length: > 0 } description ? description : task.Title is { Length: > 0 } title ? title : $"Task {task.IdText}";
        var created = await queue.EnqueueAsync(new JobSpec
        {
            Id = jobId,
            Agent = options.Agent,
            Repo = RepoRef.Empty,
            Prompt = prompt,
            TimeoutSeconds = (int)options.TaskTimeout.TotalSeconds,
            // The seed runs a task once; a worker stopped on shutdown hands the job back and it runs again, a crashed one ends it.
            MaxAttempts = 1,
            Metadata = new JsonObject { ["source"] = "tasks", ["taskId"] = task.IdText, ["agentId"] = options.AgentId, ["title"] = task.Title },
        }, stopping).ConfigureAwait(false);
        if (created.Created)
        {
            LogPicked(logger, task.IdText, jobId, task.Title ?? "");
            _database.Log(task.IdText, "info", $"Task picked: {task.Title ?? "Unknown"}", new JsonObject { ["task_id"] = task.IdText, ["title"] = task.Title, ["job_id"] = jobId });
            await _database.InsertProgressAsync(task, percent, "Task started", stopping).ConfigureAwait(false);
        }
        else
        {
            LogResumed(logger, task.IdText, jobId, created.Job.State.Name());
        }

        var follow = new JobFollower(queue, jobId);
        JobRecord job;
        while (true)
        {
            job = await follow.ReadAsync(stopping).ConfigureAwait(false);
            if (job.State.IsTerminal())
                break;
            try
            {
                await _database.InsertProgressAsync(task, follow.Percent ?? percent, follow.Message is { } message ? $"working... ({message})" : "working...", stopping).ConfigureAwait(false);
                await _database.FlushLogsAsync(stopping).ConfigureAwait(false);
                Recovered();
            }
            catch (Exception e) when (IsDatabaseError(e) && !stopping.IsCancellationRequested)
            {
                // The agent goes on; heartbeats resume when the database is back.
                Failed(e, task.IdText);
            }
            if (!await WaitAsync(stopping).ConfigureAwait(false))
                return;
        }

        var outcome = Outcome(job, follow, Math.Max(percent, follow.Percent ?? 0));
        foreach (var artifact in outcome.Artifacts)
        {
            if (artifact.Error is { } error)
                _database.Log(task.IdText, "error", $"Failed to upload screenshot {artifact.Name}: {error}", new JsonObject { ["filename"] = artifact.Name });
            else if (artifact.Key is { } key)
                _database.Log(task.IdText, "info", $"Screenshot uploaded: {key}", new JsonObject { ["filename"] = artifact.Name, ["object_path"] = key, ["file_size"] = artifact.Size });
        }
        _database.Log(task.IdText, outcome.Succeeded ? "info" : "error",
            outcome.Succeeded ? $"Task completed (job {jobId}, state {job.State.Name()})" : $"Task failed (job {jobId}, state {job.State.Name()}): {outcome.Error}",
            new JsonObject { ["job_id"] = jobId, ["state"] = job.State.Name(), ["return_code"] = outcome.ExitCode, ["duration"] = job.Result?.DurationSeconds });

        // The job's result is durable in the queue, so the end is written whenever the database takes it.
        while (true)
        {
            try
            {
                foreach (var warning in await _database.FinishAsync(task, outcome, stopping).ConfigureAwait(false))
                    LogFinishWarning(logger, task.IdText, warning);
                await _database.FlushLogsAsync(stopping).ConfigureAwait(false);
                Recovered();
                LogFinished(logger, task.IdText, jobId, job.State.Name(), outcome.Artifacts.Count(a => a.Key is not null));
                return;
            }
            catch (Exception e) when (IsDatabaseError(e) && !stopping.IsCancellationRequested)
            {
                Failed(e, task.IdText);
            }
            if (!await WaitAsync(stopping).ConfigureAwait(false))
                return;
        }
    }

    private static TaskOutcome Outcome(JobRecord job, JobFollower follow, int percent)
    {
        var result = job.Result;
        var succeeded = job.State == JobState.Succeeded;
        var response = succeeded || follow.Stdout.Length > 0 ? ResponseFrom(result?.Summary, follow.Stdout.ToString()) : null;
        var error = succeeded ? null : job.Error ?? job.State.Name();
        return new TaskOutcome(
            succeeded,
            result?.ExitCode,
            response is { Length: > 0 } ? response : error ?? $"Task completed (return_code={result?.ExitCode}, duration={result?.DurationSeconds:0.##}s, screenshots={result?.CollectedArtifacts.Count(a => a.Key is not null) ?? 0})",
            error,
            job.Id,
            Math.Clamp(percent, 0, 99),
            result?.CollectedArtifacts ?? []);
    }

    /// <summary>The seed's rules: the text between AGENT_RESPONSE_START and AGENT_RESPONSE_END, else the agent's result summary, else its stdout.</summary>
    internal static string? ResponseFrom(string? summary, string stdout)
    {
        var start = stdout.IndexOf("AGENT_RESPONSE_START", StringComparison.Ordinal);
        var end = start < 0 ? -1 : stdout.IndexOf("AGENT_RESPONSE_END", start, StringComparison.Ordinal);
        if (end > start)
        {
            var lines = stdout[start..end].Split('\n').Skip(1).Where(l => l.Trim().Length > 0 && !l.Trim().All(c => c == '='));
            var marked = string.Join('\n', lines).Trim();
            if (marked.Length > 0)
                return marked;
        }
        if (summary is { Length: > 0 })
            return summary;
        var text = stdout.Trim();
        return text.Length == 0 ? null : text.Length <= MaxResponseChars ? text : text[..MaxResponseChars];
    }

    /// <summary>One job per task, whichever worker picks it up again: <c>task-&lt;id&gt;</c> in job-id characters.</summary>
    internal static string JobIdFor(TaskRow task)
    {
        var id = $"task-{new string([.. task.IdText.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' ? c : '_')])}";
        return id.Length <= 128 ? id : id[..128];
    }

    private async Task<bool> WaitAsync(CancellationToken stopping)
    {
        try
        {
            await Task.Delay(options.PollInterval, timeProvider, stopping).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void Failed(Exception e, string? taskId)
    {
        if (e is PostgresException or TasksSchemaException)
        {
            // The server answered: the tables are not as expected. Said again only when it changes, not every poll.
            if (_lastError != e.Message)
                LogDatabaseError(logger, e.Message);
            _lastError = e.Message;
        }
        else if (IsDatabaseError(e))
        {
            _database.Reset();
            if (!_databaseDown)
                LogDatabaseDown(logger, e.Message);
            _databaseDown = true;
        }
        else
        {
            LogPollFailed(logger, e, taskId ?? "-");
            _database.Log(taskId, "error", $"Error in poll loop: {e.Message}", new JsonObject { ["exc_info"] = e.GetType().Name });
        }
    }

    private void Recovered()
    {
        _lastError = null;
        if (!_databaseDown)
            return;
        _databaseDown = false;
        LogDatabaseBack(logger);
        _database.Log(null, "warning", "Tasks database was unreachable; reconnected");
    }

    private static bool IsDatabaseError(Exception e) =>
        e is NpgsqlException or TimeoutException or IOException or System.Net.Sockets.SocketException or TasksSchemaException;

    [LoggerMessage(Level = LogLevel.Information, Message = "Tasks poller for agent {AgentId} starting: runs agent {Agent}, polls every {Seconds}s")]
    private static partial void LogStarting(ILogger logger, string agentId, string agent, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Tasks poller stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Tasks database columns: {Schema}")]
    private static partial void LogSchema(ILogger logger, string schema);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tasks database has no binary_file_metadata table: uploaded files are recorded in task_progress and agent_logs only")]
    private static partial void LogNoFileTable(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tasks database: tasks has no response column and no json metadata column; task responses are not written")]
    private static partial void LogNoResponseColumn(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Structured task logs are not written to agent_logs: {Reason}")]
    private static partial void LogLogsDisabled(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} already at {Percent}%: skipped")]
    private static partial void LogSkipped(ILogger logger, string taskId, double percent);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} picked as job {JobId}: {Title}")]
    private static partial void LogPicked(ILogger logger, string taskId, string jobId, string title);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId}: following its existing job {JobId} ({State})")]
    private static partial void LogResumed(ILogger logger, string taskId, string jobId, string state);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} finished: job {JobId} {State}, {Uploaded} file(s) uploaded")]
    private static partial void LogFinished(ILogger logger, string taskId, string jobId, string state, int uploaded);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId}: {Warning}")]
    private static partial void LogFinishWarning(ILogger logger, string taskId, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tasks database unreachable ({Reason}); retrying every poll interval with fresh connections")]
    private static partial void LogDatabaseDown(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Tasks database: {Reason}; retrying every poll interval")]
    private static partial void LogDatabaseError(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Tasks database reachable again")]
    private static partial void LogDatabaseBack(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Tasks poller: task {TaskId}: unexpected error; polling goes on")]
    private static partial void LogPollFailed(ILogger logger, Exception exception, string taskId);
}

/// <summary>Reads a job and its new events: the agent's last progress and its stdout, for heartbeats and the response.</summary>
internal sealed class JobFollower(IJobQueue queue, string jobId)
{
    private const int MaxStdoutChars = 256 * 1024;
    private long _afterSeq;

    public int? Percent { get; private set; }
    public string? Message { get; private set; }
    public StringBuilder Stdout { get; } = new();

    public async Task<JobRecord> ReadAsync(CancellationToken cancellationToken)
    {
        var job = await queue.GetAsync(jobId, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"job {jobId} disappeared from the queue");
        while (true)
        {
            var events = await queue.ReadEventsAsync(jobId, _afterSeq, 500, cancellationToken).ConfigureAwait(false);
            foreach (var e in events)
            {
                _afterSeq = e.Seq;
                if (e.Kind == JobEventKind.Progress && e.Stream is null && ParsePercent(e.Message) is var (percent, message))
                {
                    Percent = percent ?? Percent;
                    Message = message;
                }
                else if (e.Kind == JobEventKind.Log && e.Stream == "stdout" && Stdout.Length < MaxStdoutChars)
                {
                    Stdout.Append(e.Message).Append('\n');
                }
            }
            if (events.Count < 500)
                return job;
        }
    }

    /// <summary>Agent progress events read "NN% message"; the pipeline's own ("cloning …") have no percent and are not the agent's.</summary>
    private static (int? Percent, string Message)? ParsePercent(string text)
    {
        var space = text.IndexOf("% ", StringComparison.Ordinal);
        if (space > 0 && int.TryParse(text.AsSpan(0, space), NumberStyles.Integer, CultureInfo.InvariantCulture, out var percent))
            return (Math.Clamp(percent, 0, 99), text[(space + 2)..]);
        return null;
    }
}
