using AgentWorker.Core.Results;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Collects an audit agent's findings and writes them in one deterministic order, so two runs over the
/// same repository produce identical output, followed by the closing progress and result lines.
/// </summary>
internal sealed class AuditReport(string agentId)
{
    private readonly List<Finding> findings = [];

    public void Add(string severity, string rule, string? file, int? line, string message) =>
        findings.Add(new Finding(severity, rule, file, line, message));

    public void Publish(AgentOutput output, int filesScanned)
    {
        findings.Sort(static (a, b) =>
        {
            var order = string.CompareOrdinal(a.File, b.File);
            if (order == 0)
                order = Nullable.Compare(a.Line, b.Line);
            if (order == 0)
                order = string.CompareOrdinal(a.Rule, b.Rule);
            return order != 0 ? order : string.CompareOrdinal(a.Message, b.Message);
        });
        foreach (var finding in findings)
            output.Finding(finding);
        output.Progress(100, $"{agentId}: done");
        output.Result(Summary(filesScanned));
    }

    private string Summary(int filesScanned)
    {
        var counts = AgentMessage.Severities
            .Select(severity => (Severity: severity, Count: findings.Count(f => f.Severity == severity)))
            .Where(c => c.Count > 0)
            .Select(c => $"{c.Count} {c.Severity}")
            .ToList();
        var breakdown = counts.Count == 0 ? "" : $" ({string.Join(", ", counts)})";
        return $"{agentId}: {Plural(findings.Count, "finding")}{breakdown} in {Plural(filesScanned, "file")}";
    }

    /// <summary>"a, b, c, d, e and 3 more": keeps messages about widely repeated things one readable line.</summary>
    public static string Enumerate(IEnumerable<string> items)
    {
        const int shown = 5;
        var list = items.ToList();
        return string.Join(", ", list.Take(shown)) + (list.Count > shown ? $" and {list.Count - shown} more" : "");
    }

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";
}
