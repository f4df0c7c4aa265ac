namespace AgentWorker.Core.Sandbox;

/// <summary>Resource limits of one agent run.</summary>
public sealed record SandboxLimits
{
    public long MemoryBytes { get; init; } = 2048L * 1024 * 1024;
    public int Pids { get; init; } = 256;
    public double Cpus { get; init; } = 2;
    public long TmpBytes { get; init; } = 512L * 1024 * 1024;
    public long FileSizeBytes { get; init; } = 1024L * 1024 * 1024;
    public int OpenFiles { get; init; } = 1024;
}

/// <summary>Which sandbox runs agents, and the limits they get unless an agent asks for others.</summary>
public sealed record SandboxOptions
{
    public const string Bubblewrap = "bwrap";
    public const string None = "none";

    public string Kind { get; init; } = Bubblewrap;
    public SandboxLimits Limits { get; init; } = new();

    /// <summary>Host paths that must never be visible inside, even when under a directory that is (data dir, config, agents file).</summary>
    public IReadOnlyList<string> HiddenPaths { get; init; } = [];

    /// <summary>
    /// Host user the agent runs as when the worker is root. Without it the sandbox's uid would map to host root:
    /// no capabilities, but still the owner of every root-owned file it can reach.
    /// </summary>
    public int HostUid { get; init; } = 65534;

    /// <summary>Where the seccomp filter file is written (once per worker).</summary>
    public required string StateDir { get; init; }
}
