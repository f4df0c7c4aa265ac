namespace AgentWorker.Orchestration.Worker;

/// <summary>How the worker talks to its orchestrator (the Go tool worker's flags, with its defaults).</summary>
public sealed record OrchestratorLinkOptions
{
    public required OrchestratorAddress Address { get; init; }
    public required string Name { get; init; }
    public string Version { get; init; } = typeof(OrchestratorLinkOptions).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan RpcTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public int MaxReceiveMessageBytes { get; init; } = 100 * 1024 * 1024;
    public int MaxSendMessageBytes { get; init; } = 100 * 1024 * 1024;
    public TimeSpan ReconnectInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Failed connection attempts in a row before the worker gives up and exits non-zero; 0 = never.</summary>
    public int ReconnectMaxAttempts { get; init; }

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(30);
    public int MaxConcurrentTasks { get; init; } = 4;

    /// <summary>How long a task cancelled without force may go on finishing before it is killed (also on shutdown).</summary>
    public TimeSpan CancelGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Output chunk size: well under the send limit, so a chunk plus its envelope always fits.</summary>
    public int ChunkBytes => Math.Clamp(MaxSendMessageBytes - 1024, 1024, 256 * 1024);
}
