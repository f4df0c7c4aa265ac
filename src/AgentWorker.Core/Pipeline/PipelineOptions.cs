using AgentWorker.Core.Execution;
using AgentWorker.Core.Sandbox;

namespace AgentWorker.Core.Pipeline;

/// <summary>How the worker pool runs jobs.</summary>
public sealed record PipelineOptions
{
    public int Slots { get; init; } = 2;
    public string? DefaultAgent { get; init; }
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long one lease call blocks waiting for work (the seed's <c>run --timeout</c>).</summary>
    public TimeSpan LeaseWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>On shutdown, how long running jobs may go on before they are stopped and handed back.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(30);

    public long MaxOutputBytes { get; init; } = 1024 * 1024;
    public int MaxFindings { get; init; } = 1000;

    /// <summary>Bytes of agent-reported artifacts kept per attempt (the diff is not counted).</summary>
    public long MaxArtifactBytes { get; init; } = 100L * 1024 * 1024;

    /// <summary>The PATH every agent gets unless its registry entry sets one: the worker's own (a root's pyenv shims, say) is not passed.</summary>
    public const string AgentPath = "/usr/local/bin:/usr/bin:/bin";

    /// <summary>Bytes of <c>diff.patch</c> kept per attempt; a longer diff is cut there (MAX_DIFF_MB).</summary>
    public long MaxDiffBytes { get; init; } = 50L * 1024 * 1024;

    /// <summary>Worker environment variable names every agent may see (on top of each agent's own allow-list).</summary>
    public IReadOnlyList<string> PassEnv { get; init; } = ["LANG", "TZ", "DOTNET_ROOT"];

    /// <summary>Limits of an agent run unless its registry entry says otherwise.</summary>
    public SandboxLimits Limits { get; init; } = new();

    /// <summary>Fixed variables every agent gets (e.g. DOTNET_ROOT so built-in agents find the runtime inside the sandbox).</summary>
    public IReadOnlyDictionary<string, string> AgentVariables { get; init; } = new Dictionary<string, string>();

    /// <summary>Masks the worker's own secrets in everything an attempt stores (log lines, errors).</summary>
    public SecretRedactor Redactor { get; init; } = SecretRedactor.None;

    /// <summary>The egress proxy's settings: private ranges and pinned names it allows, and its limits per run.</summary>
    public Egress.EgressOptions Egress { get; init; } = new();

    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";
}
