namespace AgentWorker.Core.Results;

/// <summary>One problem an agent reported. Severity is one of critical, high, medium, low, info.</summary>
public sealed record Finding(string Severity, string Rule, string? File, int? Line, string Message);

/// <summary>What a finished attempt produced.</summary>
public sealed record JobResult
{
    public IReadOnlyList<Finding> Findings { get; init; } = [];
    public int HealthScore { get; init; } = 100;
    public int? ExitCode { get; init; }
    public string? Summary { get; init; }

    /// <summary>True when the agent reported more findings than are kept.</summary>
    public bool FindingsTruncated { get; init; }

    public double DurationSeconds { get; init; }

    /// <summary>What the agent's run used, where the sandbox could measure it.</summary>
    public ResourceReport? Resources { get; init; }

    /// <summary>Files the agent left in its artifacts folder (AGENT_WORKER_ARTIFACTS), and where each was uploaded.</summary>
    public IReadOnlyList<Artifacts.ArtifactRecord> CollectedArtifacts { get; init; } = [];

    /// <summary>What the agent changed (diffstat; in apply mode the commit and branch).</summary>
    public ChangeReport? Changes { get; init; }

    /// <summary>Files kept for the job: the diff and what the agent reported.</summary>
    public IReadOnlyList<StoredArtifact> Artifacts { get; init; } = [];

    /// <summary>Per host and port the agent asked its egress proxy for: connections, refusals and bytes (networks allowlist and full).</summary>
    public IReadOnlyList<Egress.EgressHostSummary> Egress { get; init; } = [];

    /// <summary>What the agent's requests through the model gateway used and cost (null for agents without a gateway).</summary>
    public Gateway.ModelUsageReport? Usage { get; init; }

    public RunReceipt? Receipt { get; init; }
}

/// <summary>Peak memory and CPU time (from the run's control group), wall time, and the signal that ended the agent, if any.</summary>
public sealed record ResourceReport(long? PeakMemoryBytes, double? CpuSeconds, double WallSeconds, int? ExitSignal, bool OutOfMemory);
