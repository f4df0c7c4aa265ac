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
}
