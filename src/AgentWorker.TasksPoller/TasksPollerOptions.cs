namespace AgentWorker.TasksPoller;

/// <summary>How the tasks-table poller runs (the CUA seed's POSTGRES_URL, AGENT_ID, POLL_INTERVAL_SECONDS, RUN_TASK_TIMEOUT_SECONDS).</summary>
public sealed record TasksPollerOptions
{
    /// <summary>The tasks database: a <c>postgresql://</c> URL or Npgsql key=value pairs.</summary>
    public required string ConnectionString { get; init; }

    /// <summary>Whose tasks to run (<c>tasks.agent_id</c>).</summary>
    public required string AgentId { get; init; }

    /// <summary>The registry agent that runs each task.</summary>
    public required string Agent { get; init; }

    /// <summary>Between polls, and between heartbeat progress rows while a task runs.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan TaskTimeout { get; init; } = TimeSpan.FromSeconds(300);
}
