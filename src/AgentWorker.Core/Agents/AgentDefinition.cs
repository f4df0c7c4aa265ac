using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Agents;

/// <summary>
/// One registry entry: how to start an agent. <see cref="Command"/> is an argv list (no shell) in which
/// <c>{prompt}</c> and <c>{workspace}</c> are replaced; <see cref="Env"/> names the worker's environment
/// variables the agent may see (everything else is withheld).
/// </summary>
public sealed record AgentDefinition
{
    public required string Id { get; init; }
    public required IReadOnlyList<string> Command { get; init; }
    public string? Description { get; init; }
    public int? TimeoutSeconds { get; init; }
    public IReadOnlyList<string> Env { get; init; } = [];

    /// <summary>Fixed variables only this agent gets (e.g. the llm agent's endpoint and key from the worker's settings).</summary>
    public IReadOnlyDictionary<string, string> Variables { get; init; } = new Dictionary<string, string>();
    /// <summary>Network when the job names none.</summary>
    public NetworkMode? Network { get; init; }

    /// <summary>Limits for this agent's runs where they differ from the worker's defaults.</summary>
    public AgentLimits? Limits { get; init; }

    public bool BuiltIn { get; init; }

    /// <summary>The network a job gets: its own choice, else this agent's, else none.</summary>
    public NetworkMode NetworkFor(JobSpec job) => job.Network ?? Network ?? NetworkMode.None;

    /// <summary>The argv with placeholders filled in.</summary>
    public IReadOnlyList<string> Expand(string workspace, string? prompt) =>
        [.. Command.Select(arg => arg
            .Replace("{workspace}", workspace, StringComparison.Ordinal)
            .Replace("{prompt}", prompt ?? "", StringComparison.Ordinal))];
}

/// <summary>Per-agent overrides of the sandbox limits (registry <c>limits:</c>).</summary>
public sealed record AgentLimits(int? MemoryMb, int? Pids, double? Cpus, int? TmpMb)
{
    public Sandbox.SandboxLimits Apply(Sandbox.SandboxLimits defaults) => defaults with
    {
        MemoryBytes = MemoryMb is { } memory ? memory * 1024L * 1024 : defaults.MemoryBytes,
        Pids = Pids ?? defaults.Pids,
        Cpus = Cpus ?? defaults.Cpus,
        TmpBytes = TmpMb is { } tmp ? tmp * 1024L * 1024 : defaults.TmpBytes,
    };
}
