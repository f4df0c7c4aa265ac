namespace AgentWorker.Core.Workspace;

/// <summary>Where workspaces live and how big a cloned repository may be.</summary>
public sealed record WorkspaceOptions
{
    public required string WorkDir { get; init; }
    public long MaxRepoBytes { get; init; } = 500L * 1024 * 1024;
    public int MaxRepoFiles { get; init; } = 100_000;
    public TimeSpan CloneTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Token for HTTPS remotes, handed to git through a credential helper reading the environment, never through the URL.</summary>
    public string? GitToken { get; init; }

    /// <summary>The only host the token is offered to, over HTTPS.</summary>
    public string GitTokenHost { get; init; } = "github.com";
}
