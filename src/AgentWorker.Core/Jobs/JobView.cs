using System.Text.Json.Nodes;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Jobs;

/// <summary>A job as the HTTP API, the CLI and webhook payloads show it: URLs without their credentials.</summary>
public sealed record JobView(
    string Id,
    string? Agent,
    RepoRef Repo,
    string? Prompt,
    JobMode Mode,
    bool? CreateBranch,
    string? CommitMessage,
    NetworkMode? Network,
    IReadOnlyList<string>? AllowHosts,
    Gateway.ModelBudget? Budget,
    string? McpUrl,
    JobState State,
    int Attempts,
    int MaxAttempts,
    int Priority,
    int? TimeoutSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset RunAt,
    DateTimeOffset? FinishedAt,
    bool CancelRequested,
    string? Error,
    JobResult? Result,
    IReadOnlyList<AttemptRecord> AttemptHistory,
    JsonObject? Metadata)
{
    public static JobView From(JobRecord job) => new(
        job.Id, job.Spec.Agent, job.Spec.Repo with { Url = SecretRedactor.MaskUrlCredentials(job.Spec.Repo.Url) }, job.Spec.Prompt, job.Spec.Mode,
        job.Spec.CreateBranch ? true : null, job.Spec.CommitMessage, job.Spec.Network, job.Spec.AllowHosts, job.Spec.Budget, job.Spec.McpUrl is { } mcpUrl ? SecretRedactor.MaskUrlCredentials(mcpUrl) : null,
        job.State, job.Attempts, job.Spec.MaxAttempts, job.Spec.Priority, job.Spec.TimeoutSeconds,
        job.CreatedAt, job.UpdatedAt, job.RunAt, job.FinishedAt, job.CancelRequested, job.Error, job.Result,
        job.AttemptHistory, job.Spec.Metadata);
}
