using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace AgentWorker.Core.Jobs;

/// <summary>Where the agent's workspace comes from.</summary>
public sealed record RepoRef(string Url, string? Branch = null, string? Commit = null)
{
    /// <summary>No repository: the agent starts in a fresh empty directory (tasks-table jobs). Intake never accepts it.</summary>
    public static RepoRef Empty { get; } = new("");

    [JsonIgnore]
    public bool IsEmpty => Url.Length == 0;
}

/// <summary>What happens to the agent's changes.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobMode>))]
public enum JobMode
{
    [JsonStringEnumMemberName("dry_run")] DryRun,
    [JsonStringEnumMemberName("apply")] Apply,
}

/// <summary>What network the agent process may reach.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NetworkMode>))]
public enum NetworkMode
{
    [JsonStringEnumMemberName("none")] None,
    [JsonStringEnumMemberName("mcp_only")] McpOnly,

    /// <summary>Any public host, through the worker's egress proxy.</summary>
    [JsonStringEnumMemberName("full")] Full,

    /// <summary>The hosts of an allow list, through the worker's egress proxy (after full: stored values keep their numbers).</summary>
    [JsonStringEnumMemberName("allowlist")] Allowlist,
}

/// <summary>The canonical job request every intake normalizes into (see DESIGN.md, "Job model").</summary>
public sealed record JobSpec
{
    public required string Id { get; init; }

    /// <summary>Agent id from the registry; null means the configured default agent.</summary>
    public string? Agent { get; init; }

    public required RepoRef Repo { get; init; }
    public string? Prompt { get; init; }
    public JobMode Mode { get; init; } = JobMode.DryRun;

    /// <summary>Apply mode: when <see cref="RepoRef.Branch"/> does not exist on the remote, start from the default branch (or the commit) and create it.</summary>
    public bool CreateBranch { get; init; }

    /// <summary>Apply mode: the commit message (default: one naming the agent and the job).</summary>
    public string? CommitMessage { get; init; }
    /// <summary>Null: the agent's registry setting, else <see cref="NetworkMode.None"/>.</summary>
    public NetworkMode? Network { get; init; }

    /// <summary>
    /// Network allowlist: the hosts this job may reach, as canonical <see cref="Egress.HostPattern"/> entries; null means
    /// the agent's list (see <see cref="Agents.AgentDefinition.AllowHostsFor"/>).
    /// </summary>
    public IReadOnlyList<string>? AllowHosts { get; init; }

    /// <summary>What this job's run may spend through the model gateway; narrows its agent's budget, never widens it.</summary>
    public Gateway.ModelBudget? Budget { get; init; }
    public string? McpUrl { get; init; }
    public int? TimeoutSeconds { get; init; }
    public int MaxAttempts { get; init; } = 3;
    public int Priority { get; init; }
    public DateTimeOffset? RunAt { get; init; }
    public JsonObject? Metadata { get; init; }
}
