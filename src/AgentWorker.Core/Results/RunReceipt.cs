using AgentWorker.Core.Sandbox;

namespace AgentWorker.Core.Results;

/// <summary>
/// What ran, on what, under which limits, and what came out, with the SHA-256 of every stored output, so a run can be
/// checked afterwards: recomputing the hash of each artifact (the diff included) must give the recorded value.
/// </summary>
public sealed record RunReceipt
{
    public int Version { get; init; } = 1;
    public required string JobId { get; init; }
    public required int Attempt { get; init; }
    public required string Worker { get; init; }

    /// <summary>The repository as requested; any credentials in the URL are removed.</summary>
    public required ReceiptRepository Repository { get; init; }

    public required string CommitBefore { get; init; }

    /// <summary>The commit pushed in apply mode; null when nothing was committed.</summary>
    public string? CommitAfter { get; init; }

    public required string Mode { get; init; }
    public required ReceiptAgent Agent { get; init; }

    /// <summary>SHA-256 of the prompt (UTF-8); null when the job had none.</summary>
    public string? PromptSha256 { get; init; }

    public required ReceiptSandbox Sandbox { get; init; }

    /// <summary>How the agent ended: <c>exited</c> or <c>timed_out</c>.</summary>
    public required string End { get; init; }

    public int? ExitCode { get; init; }
    public required ReceiptUsage Usage { get; init; }
    public required ReceiptTimings Timings { get; init; }

    /// <summary>SHA-256 of <c>diff.patch</c> (also listed in <see cref="Artifacts"/>).</summary>
    public required string DiffSha256 { get; init; }

    public required IReadOnlyList<StoredArtifact> Artifacts { get; init; }

    /// <summary>What the agent reached through the egress proxy, per host and port (as in the job's result).</summary>
    public IReadOnlyList<Egress.EgressHostSummary> Egress { get; init; } = [];

    /// <summary>Requests, tokens and estimated cost through the model gateway, and the budget the run ran into, if any.</summary>
    public Gateway.ModelUsageReport? ModelUsage { get; init; }
}

public sealed record ReceiptRepository(string Url, string? Branch, string? Commit);

/// <summary>The registry command line before placeholders were filled in (the prompt is in <see cref="RunReceipt.PromptSha256"/>).</summary>
public sealed record ReceiptAgent(string Id, IReadOnlyList<string> Command);

public sealed record ReceiptSandbox(string Backend, string Network, string? McpUrl, SandboxLimits Limits, double TimeoutSeconds, long MaxOutputBytes);

public sealed record ReceiptUsage(ResourceReport? Resources, long OutputBytes, bool OutputTruncated);

public sealed record ReceiptTimings(DateTimeOffset StartedAt, DateTimeOffset AgentStartedAt, DateTimeOffset AgentFinishedAt, DateTimeOffset FinishedAt, double CloneSeconds, double AgentSeconds);
