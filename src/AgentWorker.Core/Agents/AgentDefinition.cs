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
    public NetworkMode? Network { get; init; }
    public bool BuiltIn { get; init; }

    /// <summary>The argv with placeholders filled in.</summary>
    public IReadOnlyList<string> Expand(string workspace, string? prompt) =>
        [.. Command.Select(arg => arg
            .Replace("{workspace}", workspace, StringComparison.Ordinal)
            .Replace("{prompt}", prompt ?? "", StringComparison.Ordinal))];
}
