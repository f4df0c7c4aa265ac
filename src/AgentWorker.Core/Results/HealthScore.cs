namespace AgentWorker.Core.Results;

/// <summary>
/// Health score 0–100 from findings: 100 minus a penalty per finding
/// (critical 25, high 10, medium 4, low 1, info 0), floored at 0. Documented in docs/health-score.md.
/// </summary>
public static class HealthScore
{
    public static int Penalty(string severity) => severity switch
    {
        "critical" => 25,
        "high" => 10,
        "medium" => 4,
        "low" => 1,
        _ => 0,
    };

    public static int Compute(IEnumerable<Finding> findings)
    {
        var penalty = 0L;
        foreach (var finding in findings)
            penalty += Penalty(finding.Severity);
        return (int)Math.Max(0, 100 - penalty);
    }
}
