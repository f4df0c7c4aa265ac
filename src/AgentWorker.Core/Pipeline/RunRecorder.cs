using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Workspace;

namespace AgentWorker.Core.Pipeline;

/// <summary>
/// The stages after the agent ran, while its workspace still exists: the diff (every job, dry runs too), the files the
/// agent reported, apply mode's commit and push (only after a successful run, never in dry_run), and the run receipt.
/// </summary>
public sealed class RunRecorder(WorkspaceManager workspaces, ArtifactStore artifacts, PipelineOptions options, TimeProvider timeProvider)
{
    private const int MaxAgentArtifacts = 100;

    /// <summary>
    /// Returns the result with changes, artifacts and receipt, and an error when apply mode could not commit or push
    /// (or the diff could not be taken): the attempt then fails and is retried on a fresh clone.
    /// </summary>
    public async Task<RecordedRun> RecordAsync(AgentRun run, Func<NewJobEvent, ValueTask> log, CancellationToken cancellationToken)
    {
        var job = run.Job;
        var directory = artifacts.AttemptDirectory(job.Id, run.Attempt);
        DiffStat stat;
        bool truncated;
        StoredArtifact diff;
        var diffPath = Path.Combine(directory, ArtifactStore.DiffName);
        try
        {
            (stat, truncated) = await workspaces.DiffAsync(run.Workspace, diffPath, options.MaxDiffBytes, cancellationToken).ConfigureAwait(false);
            diff = await artifacts.DescribeAsync(ArtifactStore.DiffName, diffPath, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WorkspaceException or IOException or UnauthorizedAccessException)
        {
            // Nothing half-written is kept; git's own messages name the worker's paths, which no client may see.
            File.Delete(diffPath);
            var reason = e is WorkspaceException ? HideHostPaths(e.Message, run, directory) : AgentFiles.Reason(e);
            await log(new NewJobEvent(JobEventKind.Log, $"diff: {reason}", "worker")).ConfigureAwait(false);
            return new RecordedRun(run.Result, $"recording the agent's changes failed: {reason}");
        }
        await log(new NewJobEvent(JobEventKind.Progress,
            $"diff against {run.Workspace.BaseCommit[..12]}: {stat.FilesChanged} file(s) changed, +{stat.Insertions} -{stat.Deletions}")).ConfigureAwait(false);
        if (truncated)
            await log(new NewJobEvent(JobEventKind.Log, $"diff: larger than MAX_DIFF_MB ({options.MaxDiffBytes} bytes): {ArtifactStore.DiffName} is kept cut at that size", "worker")).ConfigureAwait(false);
        List<StoredArtifact> stored = [diff, .. await ImportReportedAsync(run, directory, log, cancellationToken).ConfigureAwait(false)];

        string? commitAfter = null;
        string? pushedTo = null;
        string? error = null;
        if (job.Mode == JobMode.Apply && run.Outcome is { End: ProcessEnd.Exited, ExitCode: 0 })
        {
            var branch = job.Repo.Branch!;
            if (stat.FilesChanged == 0)
            {
                await log(new NewJobEvent(JobEventKind.Progress, $"apply: no changes, nothing pushed to {branch}")).ConfigureAwait(false);
            }
            else
            {
                try
                {
                    commitAfter = await workspaces.CommitAsync(run.Workspace, CommitMessage(run), cancellationToken).ConfigureAwait(false);
                    await workspaces.PushAsync(run.Workspace, job.Repo, branch, commitAfter, cancellationToken).ConfigureAwait(false);
                    pushedTo = branch;
                    await log(new NewJobEvent(JobEventKind.Progress,
                        $"apply: pushed {commitAfter[..12]} to {branch}{(run.Workspace.BranchExists ? "" : " (new branch)")}")).ConfigureAwait(false);
                }
                catch (WorkspaceException e)
                {
                    error = $"apply: {HideHostPaths(e.Message, run, directory)}";
                    await log(new NewJobEvent(JobEventKind.Log, error, "worker")).ConfigureAwait(false);
                }
            }
        }

        var receipt = Receipt(run, pushedTo is null ? null : commitAfter, diff, stored);
        var result = run.Result with
        {
            Changes = new ChangeReport(run.Workspace.BaseCommit, pushedTo is null ? null : commitAfter, pushedTo, stat) { DiffTruncated = truncated },
            Artifacts = stored,
            Receipt = receipt,
        };
        return new RecordedRun(result, error);
    }

    /// <summary>
    /// Files the agent reported with <c>{"type":"artifact","path":…}</c>, each kept once however often and however spelled
    /// (<c>x.png</c>, <c>./x.png</c>, <c>/workspace/x.png</c>); one that cannot be kept is logged and skipped.
    /// </summary>
    private async Task<List<StoredArtifact>> ImportReportedAsync(AgentRun run, string directory, Func<NewJobEvent, ValueTask> log, CancellationToken cancellationToken)
    {
        var stored = new List<StoredArtifact>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var budget = options.MaxArtifactBytes;
        // The agent names files as it sees them: relative to its working directory, or under the workspace path.
        var inside = run.WorkspacePath.TrimEnd('/') + "/";
        foreach (var reported in run.ReportedArtifacts)
        {
            var relative = reported.StartsWith(inside, StringComparison.Ordinal) ? reported[inside.Length..] : reported;
            var path = Path.IsPathRooted(relative) ? null : ArtifactStore.NormalizePath(relative);
            if (path is not null && !seen.Add(path))
                continue;
            if (stored.Count == MaxAgentArtifacts)
            {
                await log(new NewJobEvent(JobEventKind.Log, $"artifacts: only the first {MaxAgentArtifacts} are kept", "worker")).ConfigureAwait(false);
                break;
            }
            try
            {
                var artifact = await artifacts.ImportAsync(run.Workspace.RepoDir, path ?? throw new ArtifactException("not a path inside the workspace"),
                    directory, budget, cancellationToken).ConfigureAwait(false);
                budget -= artifact.Size;
                stored.Add(artifact);
            }
            catch (Exception e) when (e is ArtifactException or IOException or UnauthorizedAccessException)
            {
                await log(new NewJobEvent(JobEventKind.Log, $"artifact '{options.Redactor.Redact(reported)}' not kept: {AgentFiles.Reason(e)}", "worker")).ConfigureAwait(false);
            }
        }
        return stored;
    }

    /// <summary>A git message as a client may see it: the workspace as the agent knew it, the worker's other directories unnamed.</summary>
    private static string HideHostPaths(string message, AgentRun run, string artifactsDirectory) => message
        .Replace(run.Workspace.RepoDir, run.WorkspacePath, StringComparison.Ordinal)
        .Replace(artifactsDirectory, "<artifacts>", StringComparison.Ordinal)
        .Replace(run.Workspace.Root, "<workspace>", StringComparison.Ordinal);

    private RunReceipt Receipt(AgentRun run, string? pushedCommit, StoredArtifact diff, IReadOnlyList<StoredArtifact> stored)
    {
        var job = run.Job;
        var finished = timeProvider.GetUtcNow();
        return new RunReceipt
        {
            JobId = job.Id,
            Attempt = run.Attempt,
            Worker = options.WorkerId,
            Repository = new ReceiptRepository(RepoUrls.WithoutCredentials(job.Repo.Url), job.Repo.Branch, job.Repo.Commit),
            CommitBefore = run.Workspace.BaseCommit,
            CommitAfter = pushedCommit,
            Mode = job.Mode == JobMode.Apply ? "apply" : "dry_run",
            Agent = new ReceiptAgent(run.Agent.Id, run.Agent.Command),
            PromptSha256 = job.Prompt is null ? null : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(job.Prompt))),
            Sandbox = new ReceiptSandbox(run.SandboxName, run.Sandbox.Network.Name(), run.Sandbox.McpUrl is { } mcpUrl ? options.Redactor.Redact(mcpUrl) : null, run.Sandbox.Limits, run.Timeout.TotalSeconds, options.MaxOutputBytes),
            End = run.Outcome.End == ProcessEnd.TimedOut ? "timed_out" : "exited",
            ExitCode = run.Outcome.ExitCode,
            Usage = new ReceiptUsage(run.Result.Resources, run.Outcome.OutputBytes, run.Outcome.OutputTruncated),
            Timings = new ReceiptTimings(run.StartedAt, run.AgentStartedAt, run.AgentStartedAt + run.Outcome.Duration, finished,
                Math.Round((run.AgentStartedAt - run.StartedAt).TotalSeconds, 3), Math.Round(run.Outcome.Duration.TotalSeconds, 3)),
            DiffSha256 = diff.Sha256,
            Artifacts = stored,
            Egress = run.Result.Egress,
            ModelUsage = run.Result.Usage,
        };
    }

    private static string CommitMessage(AgentRun run)
    {
        var job = run.Job;
        var subject = job.CommitMessage ?? $"{run.Agent.Id}: {FirstLine(job.Prompt) ?? $"changes from job {job.Id}"}";
        return string.Create(CultureInfo.InvariantCulture, $"{subject}\n\nAgent-Worker-Job: {job.Id}\nAgent-Worker-Agent: {run.Agent.Id}\n");
    }

    private static string? FirstLine(string? text)
    {
        var line = text?.Split('\n', 2)[0].Trim();
        return string.IsNullOrEmpty(line) ? null : line.Length <= 72 ? line : line[..69] + "...";
    }
}

/// <summary>What the recorder needs to know about one finished agent run.</summary>
public sealed record AgentRun(
    JobSpec Job,
    int Attempt,
    AgentDefinition Agent,
    JobWorkspace Workspace,
    string SandboxName,
    SandboxRequest Sandbox,
    string WorkspacePath,
    TimeSpan Timeout,
    ProcessOutcome Outcome,
    JobResult Result,
    IReadOnlyList<string> ReportedArtifacts,
    DateTimeOffset StartedAt,
    DateTimeOffset AgentStartedAt);

/// <summary>The result with what was recorded; <see cref="Error"/> set when the attempt must fail for it.</summary>
public sealed record RecordedRun(JobResult Result, string? Error);
