namespace AgentWorker.Core.Workspace;

/// <summary>Where workspaces live, how big a cloned repository may be, and how git reaches remotes.</summary>
public sealed record WorkspaceOptions
{
    public required string WorkDir { get; init; }
    public long MaxRepoBytes { get; init; } = 500L * 1024 * 1024;
    public int MaxRepoFiles { get; init; } = 100_000;
    public TimeSpan CloneTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long each git command on an agent's tree after its run (stage, diff, commit, push) may take.</summary>
    public TimeSpan ChangesTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Token for HTTPS remotes, handed to git through a credential helper reading the environment, never through the URL.</summary>
    public string? GitToken { get; init; }

    /// <summary>The only host the token is offered to, over HTTPS.</summary>
    public string GitTokenHost { get; init; } = "github.com";

    /// <summary>Private key for SSH remotes; null: ssh's own default identities.</summary>
    public string? SshKeyFile { get; init; }

    /// <summary>known_hosts for SSH remotes; null: ssh's defaults (~/.ssh/known_hosts of the worker's user).</summary>
    public string? SshKnownHostsFile { get; init; }

    /// <summary><see cref="GitSsh.Strict"/> (unknown or changed host keys are refused) or <see cref="GitSsh.AcceptNew"/>.</summary>
    public string SshStrictHostKeyChecking { get; init; } = GitSsh.Strict;

    /// <summary>Author and committer of apply-mode commits.</summary>
    public string CommitAuthorName { get; init; } = "AgentWorker";

    public string CommitAuthorEmail { get; init; } = "agent-worker@localhost";

    /// <summary>The local mirror cache repeat clones are made from; null clones every workspace from the remote.</summary>
    public CloneCacheOptions? CloneCache { get; init; }

    /// <summary>Host uid whose rights a local repository is read with (a root worker's sandbox user); null: the worker's own.</summary>
    public int? LocalReaderUid { get; init; }

    /// <summary>The worker's own directories (data dir, clone cache, WORK_DIR): a local repository inside one is refused.</summary>
    public IReadOnlyList<string> PrivatePaths { get; init; } = [];

    /// <summary>When set (LOCAL_REPO_ROOTS), a local repository must lie under one of these directories.</summary>
    public IReadOnlyList<string>? LocalRepoRoots { get; init; }

    /// <summary>When set, each attempt's writable trees are size-capped tmpfs mounts; null: they live on WORK_DIR's filesystem.</summary>
    public RunFilesystemOptions? RunFilesystem { get; init; }
}

/// <summary>The caps of an attempt's own filesystems: the checkout is capped by <see cref="WorkspaceOptions.MaxRepoBytes"/>.</summary>
public sealed record RunFilesystemOptions
{
    /// <summary>The agent's home directory.</summary>
    public long HomeBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>The artifacts folder (MAX_ARTIFACT_MB).</summary>
    public long ArtifactBytes { get; init; } = 100L * 1024 * 1024;
}

/// <summary>Where the bare mirrors live and when they are swept.</summary>
public sealed record CloneCacheOptions
{
    public required string Dir { get; init; }

    /// <summary>Above this total, the least recently used mirrors not in use are removed.</summary>
    public long MaxBytes { get; init; } = 5L * 1024 * 1024 * 1024;

    /// <summary>Mirrors unused for longer are removed.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(7);
}
