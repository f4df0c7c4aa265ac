using AgentWorker.Core.Agents;
using AgentWorker.Core.Allocation;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Sinks;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Pipeline;

/// <summary>
/// Runs one leased job through the pipeline: resolve agent → borrow instance (with an allocator) → workspace (clone) →
/// agent process → collected artifacts → post-run stages (diff, reported artifacts, apply, receipt) → result → ack → sinks;
/// the instance goes back on every outcome. A failure of the job is recorded on the job, never thrown; the workspace is
/// always removed.
/// </summary>
public sealed partial class JobRunner(
    IJobQueue queue,
    AgentRegistry agents,
    WorkspaceManager workspaces,
    ProcessRunner processes,
    ISandbox sandbox,
    RunRecorder recorder,
    JobNotifier notifier,
    PipelineOptions options,
    IJobMetrics metrics,
    BackendHealth health,
    BackendRetry retry,
    TimeProvider timeProvider,
    ILogger<JobRunner> logger,
    ArtifactCollector artifacts,
    InstanceManager? instances = null,
    IModelGateway? gateway = null)
{
    private readonly EgressPolicy _egressPolicy = new(options.Egress.AllowCidrs, options.Egress.Resolve);

    /// <summary>
    /// Runs the job. When <paramref name="stop"/> fires (shutdown grace over) the job is stopped and handed back.
    /// While the backend is unreachable the outcome waits to be recorded (with backoff) until it is back; the lease may
    /// expire meanwhile and the job run again elsewhere, and then only one of the two is recorded.
    /// </summary>
    public async Task<JobState?> RunAsync(IJobLease lease, CancellationToken stop)
    {
        var job = lease.Job.Spec;
        using var scope = JobScope(logger, job.Id, lease.Attempt);
        var agentId = job.Agent ?? options.DefaultAgent ?? "";
        var started = timeProvider.GetTimestamp();
        metrics.Started(agentId);
        LogStarted(logger, job.Id, agentId, lease.Attempt);
        notifier.Publish(lease.Job);

        using var leaseLost = new CancellationTokenSource();
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(stop, lease.CancelRequested, leaseLost.Token);
        using var finished = new CancellationTokenSource();
        var heartbeat = HeartbeatAsync(lease, leaseLost, finished.Token);
        JobState? state = null;
        try
        {
            await using var events = new EventWriter(queue, job.Id, lease.Attempt, timeProvider);
            state = await ExecuteAsync(lease, agentId, events, stop, abort.Token, leaseLost.Token).ConfigureAwait(false);
        }
        catch (LeaseLostException)
        {
            LogLeaseLost(logger, job.Id);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Shutting down while the backend is unreachable: nothing to record the outcome in.
            LogNotRecorded(logger, job.Id);
        }
        catch (Exception e)
        {
            // A bug in a stage must not take the worker down; the attempt is recorded as failed.
            LogUnexpected(logger, e, job.Id);
            try
            {
                state = await FailAsync(lease, new JobFailure(FailureKind.Error, $"internal error: {e.Message}"), stop).ConfigureAwait(false);
            }
            catch (Exception recordFailure)
            {
                LogUnexpected(logger, recordFailure, job.Id);
            }
        }
        finally
        {
            await finished.CancelAsync().ConfigureAwait(false);
            await heartbeat.ConfigureAwait(false);
        }
        // Sinks hear of the outcome once it is stored; they run on their own and cannot lose it.
        if (state is not null)
            await notifier.PublishCurrentAsync(job.Id, CancellationToken.None).ConfigureAwait(false);
        metrics.Finished(agentId, state, timeProvider.GetElapsedTime(started));
        LogFinished(logger, job.Id, state?.Name() ?? "lease lost", timeProvider.GetElapsedTime(started).TotalSeconds);
        return state;
    }

    // stop (shutdown) also ends waiting for an unreachable backend to record the outcome; abort stops the attempt.
    private async Task<JobState> ExecuteAsync(IJobLease lease, string agentId, EventWriter events, CancellationToken stop, CancellationToken abort, CancellationToken leaseLost)
    {
        var job = lease.Job.Spec;
        var startedAt = timeProvider.GetUtcNow();
        var agent = agents.Find(agentId);
        if (agent is null)
        {
            var reason = agentId.Length == 0 ? "job names no agent and no DEFAULT_AGENT is configured" : $"unknown agent '{agentId}'";
            return await FailAsync(lease, new JobFailure(FailureKind.Permanent, reason), stop).ConfigureAwait(false);
        }

        // Disposed last, after the outcome is recorded: the instance goes back on success, failure, timeout, cancel and
        // shutdown alike (and after a crash, through the ledger sweep).
        InstanceLease? borrowed = null;
        if (instances is not null)
        {
            try
            {
                borrowed = await instances.BorrowAsync(job.Id, abort).ConfigureAwait(false);
            }
            catch (AllocatorException e)
            {
                return await FailAsync(lease, new JobFailure(FailureKind.Error, $"instance allocator: {e.Message}"), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (abort.IsCancellationRequested)
            {
                return await AbortedAsync(lease, stop, leaseLost).ConfigureAwait(false);
            }
            await events.AddAsync(new NewJobEvent(JobEventKind.Progress, $"borrowed instance {borrowed.Instance.Id} from {instances.Describe}")).ConfigureAwait(false);
            job = job with { McpUrl = job.McpUrl ?? borrowed.Instance.McpConnectionUrl };
        }
        await using var instance = borrowed;

        await events.AddAsync(new NewJobEvent(JobEventKind.Progress, job.Repo.IsEmpty ? "creating an empty workspace" : $"cloning {options.Redactor.Redact(job.Repo.Url)}")).ConfigureAwait(false);
        JobWorkspace workspace;
        try
        {
            workspace = await workspaces.CreateAsync(job, abort).ConfigureAwait(false);
        }
        catch (WorkspaceException e)
        {
            return await FailAsync(lease, new JobFailure(e.Permanent ? FailureKind.Permanent : FailureKind.Error, $"workspace: {e.Message}"), stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            return await AbortedAsync(lease, stop, leaseLost).ConfigureAwait(false);
        }

        // The workspace goes before the outcome is recorded, so a job in a final state never has one left.
        var timeout = TimeSpan.FromSeconds(job.TimeoutSeconds ?? agent.TimeoutSeconds ?? options.DefaultTimeout.TotalSeconds);
        var network = agent.NetworkFor(job);
        ProcessOutcome? outcome = null;
        Results.JobResult? result = null;
        string? startError = null;
        var startFailure = FailureKind.Permanent;
        string? overLimit = null;
        string? lastError = null;
        string? recordError = null;
        var budget = agent.Budget.Narrow(job.Budget);
        using (workspace)
        {
            if (sandbox.Name == SandboxOptions.None)
                LogUnsandboxed(logger, job.Id);
            try
            {
                // Without a sandbox the agent has the host's network; there is no namespace to put a proxy in front of.
                var journal = new EgressJournal(events.AddAsync, metrics.Egress);
                using var egress = network is NetworkMode.Allowlist or NetworkMode.Full && sandbox.Name != SandboxOptions.None
                    ? new EgressProxy(_egressPolicy, agent.AllowHostsFor(job), options.Egress, journal)
                    : null;
                // The agent's vendors are reached through the gateway with a placeholder key: the real keys stay in the worker.
                using var models = agent.Gateway.Count > 0 && gateway is not null
                    ? await gateway.OpenAsync(new GatewayRunRequest(job.Id, agent.Id, agent.Gateway, budget, events.AddAsync), abort).ConfigureAwait(false)
                    : null;
                var request = new SandboxRequest(
                    Path.GetFileName(workspace.Root), workspace.RepoDir, workspace.HomeDir, workspace.SandboxDir,
                    network, job.McpUrl, agent.Limits?.Apply(options.Limits) ?? options.Limits) { Artifacts = workspace.ArtifactsDir, Egress = egress, Gateway = models };
                using var run = sandbox.Prepare(request);
                var spec = new ProcessSpec(agent.Expand(run.WorkspacePath, job.Prompt, PromptFile(agent, job, workspace, run)), run.WorkspacePath, AgentEnvironment(agent, job, run, models, instance?.Instance), timeout, options.MaxOutputBytes)
                {
                    StandardInput = agent.PromptOnStdin ? job.Prompt ?? "" : null,
                };
                await events.AddAsync(new NewJobEvent(JobEventKind.Progress, $"running agent {agent.Id} (sandbox {sandbox.Name}, network {network.Name()})")).ConfigureAwait(false);
                var collector = new ResultCollector(options.MaxFindings);
                var agentStartedAt = timeProvider.GetUtcNow();
                outcome = await processes.RunAsync(spec, line => events.AddAsync(collector.Accept(line with { Text = options.Redactor.Redact(line.Text) })), abort, run).ConfigureAwait(false);
                await run.CloseNetworkAsync().ConfigureAwait(false);
                // The run's door to the gateway closes with the agent: its placeholder opens nothing from now on.
                models?.Dispose();
                result = collector.Build(outcome.ExitCode, outcome.Duration) with
                {
                    Resources = Resources(outcome, run.ReadUsage()),
                    Egress = await journal.CloseAsync().ConfigureAwait(false),
                    Usage = models?.Meter.Report(),
                };
                lastError = collector.LastError;
                // A stopped attempt runs again and stores nothing. Every other end (a timeout too) leaves a tree that must stay
                // within the limits a clone gets before anything of it is read or stored.
                if (outcome.End != ProcessEnd.Cancelled)
                {
                    WorkspaceManager.CheckFilled(workspace);
                    workspaces.CheckLimits(workspace.RepoDir);
                }
                // Kept whatever the exit code (a failure's screenshots explain it).
                if (outcome.End != ProcessEnd.Cancelled)
                    result = result with { CollectedArtifacts = await artifacts.CollectAsync(workspace.ArtifactsDir, job.Id, events.AddAsync, abort).ConfigureAwait(false) };
                // A job without a repository (tasks table) has no diff, commit or receipt to record.
                if (outcome.End != ProcessEnd.Cancelled && !job.Repo.IsEmpty)
                {
                    var recorded = await recorder.RecordAsync(new AgentRun(job, lease.Attempt, agent, workspace, sandbox.Name, request,
                        run.WorkspacePath, timeout, outcome, result, collector.ReportedArtifacts, startedAt, agentStartedAt), events.AddAsync, abort).ConfigureAwait(false);
                    (result, recordError) = (recorded.Result, recorded.Error);
                }
            }
            catch (OperationCanceledException) when (abort.IsCancellationRequested && outcome is not null)
            {
                // Stopped while recording or pushing: like a run that was stopped.
                outcome = outcome with { End = ProcessEnd.Cancelled };
            }
            catch (ProcessStartException e)
            {
                startError = e.Message;
            }
            catch (SandboxException e)
            {
                // Host trouble (a cgroup, a socket) may pass; the job is retried like any failed attempt.
                startError = e.Message;
                startFailure = FailureKind.Error;
            }
            catch (WorkspaceException e)
            {
                // Over a limit however the run ended: nothing of the tree was stored, and running it again would not help.
                var ended = outcome?.End == ProcessEnd.TimedOut ? $" (it had run into its {timeout.TotalSeconds:0}s timeout)" : "";
                overLimit = $"workspace after the run: {e.Message}{ended}";
            }
        }
        // The attempt's log goes in before its outcome, so a finished job's log is complete.
        await RecordAsync(() => events.FlushAsync(CancellationToken.None), stop).ConfigureAwait(false);
        if (overLimit is not null)
            return await FailAsync(lease, new JobFailure(FailureKind.Permanent, $"agent {agent.Id}: {overLimit}", outcome?.ExitCode, result), stop).ConfigureAwait(false);
        if (outcome is null || result is null)
            return await FailAsync(lease, new JobFailure(startFailure, $"agent {agent.Id}: {startError}"), stop).ConfigureAwait(false);
        // Over budget is the reason however the agent took the refusal; running it again would spend the same.
        if (outcome.End != ProcessEnd.Cancelled && result.Usage?.BudgetExceeded is { } exceeded)
            return await FailAsync(lease, new JobFailure(FailureKind.Permanent, BudgetExceeded(agent, exceeded, budget, result.Usage), outcome.ExitCode, result), stop).ConfigureAwait(false);
        switch (outcome.End)
        {
            case ProcessEnd.Exited when outcome.ExitCode == 0 && recordError is not null:
                return await FailAsync(lease, new JobFailure(FailureKind.Error, recordError, 0, result), stop).ConfigureAwait(false);
            case ProcessEnd.Exited when outcome.ExitCode == 0:
                await RecordAsync(() => lease.CompleteAsync(result, CancellationToken.None), stop).ConfigureAwait(false);
                return JobState.Succeeded;
            case ProcessEnd.Exited:
                return await FailAsync(lease, new JobFailure(FailureKind.Error, $"agent {agent.Id} exited with code {outcome.ExitCode}{(lastError is null ? "" : $": {lastError}")}", outcome.ExitCode, result), stop).ConfigureAwait(false);
            case ProcessEnd.TimedOut:
                return await FailAsync(lease, new JobFailure(FailureKind.TimedOut, $"agent {agent.Id} did not finish within {timeout.TotalSeconds:0}s and was killed", null, result), stop).ConfigureAwait(false);
            default:
                return await AbortedAsync(lease, stop, leaseLost).ConfigureAwait(false);
        }
    }

    /// <summary>The attempt was stopped from outside: a cancel request, a lost lease, or shutdown.</summary>
    private async Task<JobState> AbortedAsync(IJobLease lease, CancellationToken stop, CancellationToken leaseLost)
    {
        if (leaseLost.IsCancellationRequested)
            throw new LeaseLostException(lease.Job.Id);
        if (lease.CancelRequested.IsCancellationRequested)
            return await FailAsync(lease, new JobFailure(FailureKind.Cancelled, "cancelled on request"), stop).ConfigureAwait(false);
        await RecordAsync(() => lease.ReleaseAsync(CancellationToken.None), stop).ConfigureAwait(false);
        return JobState.Queued;
    }

    /// <summary>
    /// Where <c>{prompt_file}</c> points inside the sandbox: a file in the run's home holding the prompt, written only for
    /// agents whose command names it. Prompts of any length reach the agent this way (an argument is capped at 128 KiB).
    /// </summary>
    private static string PromptFile(AgentDefinition agent, JobSpec job, JobWorkspace workspace, SandboxRun run)
    {
        const string Name = ".agent-worker-prompt";
        if (agent.UsesPromptFile)
            File.WriteAllText(Path.Combine(workspace.HomeDir, Name), job.Prompt ?? "");
        return $"{run.HomePath}/{Name}";
    }

    /// <summary>
    /// The agent's whole environment. PATH is fixed (<see cref="PipelineOptions.AgentPath"/>), never the worker's own, unless
    /// the registry entry names PATH in <c>env</c> (the worker's value) or sets it in <c>variables</c>, which win over both.
    /// </summary>
    private Dictionary<string, string> AgentEnvironment(AgentDefinition agent, JobSpec job, SandboxRun run, GatewayRun? models, BorrowedInstance? instance)
    {
        var environment = new Dictionary<string, string>(options.AgentVariables, StringComparer.Ordinal) { ["PATH"] = PipelineOptions.AgentPath };
        foreach (var name in options.PassEnv.Concat(agent.Env))
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
                environment[name] = value;
        }
        foreach (var (name, value) in agent.Variables)
            environment[name] = value;
        environment["HOME"] = run.HomePath;
        environment["TMPDIR"] = run.TmpPath;
        environment["AGENT_WORKER_JOB_ID"] = job.Id;
        environment["AGENT_WORKER_WORKSPACE"] = run.WorkspacePath;
        foreach (var (name, value) in run.NetworkVariables)
            environment[name] = value;
        // Last, so that a key passed on by name (env, PASS_ENV) is replaced by the placeholder.
        if (models is not null && run.GatewayUrl is { } gatewayUrl)
        {
            foreach (var (name, value) in models.Variables(gatewayUrl))
                environment[name] = value;
        }
        if (run.McpUrl(job.McpUrl) is { } mcpUrl)
            environment["MCP_CONNECTION_URL"] = mcpUrl;
        if (run.ArtifactsPath is { } artifactsPath)
            environment["AGENT_WORKER_ARTIFACTS"] = artifactsPath;
        if (job.Metadata?["model"] is System.Text.Json.Nodes.JsonValue model && model.TryGetValue<string>(out var modelName))
            environment["AGENT_WORKER_MODEL"] = modelName;
        if (instance is not null)
        {
            environment["AGENT_WORKER_INSTANCE_ID"] = instance.Id;
            if (instance.ApiUrl is { } apiUrl)
                environment["AGENT_WORKER_INSTANCE_API_URL"] = apiUrl;
        }
        return environment;
    }

    /// <summary>The failure's reason: <c>budget_exceeded</c>, the budget, its limit and what the run had used.</summary>
    private static string BudgetExceeded(AgentDefinition agent, string exceeded, ModelBudget budget, ModelUsageReport usage)
    {
        var (limit, used) = exceeded switch
        {
            "maxRequests" => (budget.MaxRequests?.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{usage.Requests} requests"),
            "maxTokens" => (budget.MaxTokens?.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{usage.InputTokens + usage.OutputTokens} tokens"),
            _ => (budget.MaxCostUsd?.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{usage.CostUsd?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "0"} USD"),
        };
        return $"budget_exceeded: agent {agent.Id} reached its {exceeded} budget of {limit} ({used}); the next request was refused";
    }

    /// <summary>Shells and bubblewrap report a child killed by signal N as exit code 128 + N.</summary>
    private static Results.ResourceReport Resources(ProcessOutcome outcome, ResourceUsage? usage) => new(
        usage?.PeakMemoryBytes,
        usage?.CpuSeconds,
        Math.Round(outcome.Duration.TotalSeconds, 3),
        outcome.ExitCode is > 128 and < 160 ? outcome.ExitCode - 128 : null,
        usage?.OutOfMemoryKilled ?? false);

    private async Task HeartbeatAsync(IJobLease lease, CancellationTokenSource leaseLost, CancellationToken finished)
    {
        using var timer = new PeriodicTimer(options.HeartbeatInterval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(finished).ConfigureAwait(false))
            {
                try
                {
                    if (!await lease.ExtendAsync(finished).ConfigureAwait(false))
                    {
                        await leaseLost.CancelAsync().ConfigureAwait(false);
                        return;
                    }
                }
                catch (Exception e) when (health.IsUnavailable(e))
                {
                    // The backend may be back before the lease runs out; keep the attempt going.
                    health.ReportDown(e);
                    continue;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogHeartbeatFailed(logger, e, lease.Job.Id);
                    continue;
                }
                health.ReportUp();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Records a failed attempt, waiting out a backend outage; the error text is stored, so the worker's secrets are masked first.</summary>
    private Task<JobState> FailAsync(IJobLease lease, JobFailure failure, CancellationToken stop)
    {
        var redacted = failure with { Error = options.Redactor.Redact(failure.Error) };
        return RecordAsync(() => lease.FailAsync(redacted, CancellationToken.None), stop);
    }

    /// <summary>
    /// Writes to the queue, waiting out a backend outage with backoff. <paramref name="stop"/> (shutdown) ends the
    /// waiting but never a write already sent; once it has fired there is a single try.
    /// </summary>
    private Task<T> RecordAsync<T>(Func<Task<T>> write, CancellationToken stop) =>
        stop.IsCancellationRequested ? write() : retry.UntilAvailableAsync(_ => write(), stop);

    /// <inheritdoc cref="RecordAsync{T}"/>
    private Task RecordAsync(Func<Task> write, CancellationToken stop) =>
        stop.IsCancellationRequested ? write() : retry.UntilAvailableAsync(_ => write(), stop);

    // Every line logged while the attempt runs carries the job id (JSON: Scopes[].JobId).
    private static readonly Func<ILogger, string, int, IDisposable?> JobScope =
        LoggerMessage.DefineScope<string, int>("JobId:{JobId} Attempt:{Attempt}");

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} attempt {Attempt} started with agent {Agent}")]
    private static partial void LogStarted(ILogger logger, string jobId, string agent, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} runs WITHOUT a sandbox (--sandbox none): the agent has the worker's access to files and network")]
    private static partial void LogUnsandboxed(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} ended {State} after {Seconds:0.000}s")]
    private static partial void LogFinished(ILogger logger, string jobId, string state, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: lease lost to another worker; this attempt's outcome is discarded")]
    private static partial void LogLeaseLost(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: stopped while the queue backend was unreachable; the outcome was not recorded and the job runs again once its lease expires")]
    private static partial void LogNotRecorded(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: heartbeat failed")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId}: unexpected error")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string jobId);
}
