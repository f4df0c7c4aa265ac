using System.Globalization;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Workspace;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Tools;

/// <summary>How one sandboxed process of a tool ended, with what it used and the end of its stderr.</summary>
internal sealed record ToolProcess(ProcessOutcome Outcome, Core.Sandbox.ResourceUsage? Usage, IReadOnlyList<string> Stderr)
{
    public bool Succeeded(params int[] okCodes) =>
        Outcome.End == ProcessEnd.Exited && Usage is not { OutOfMemoryKilled: true } && Usage is not { PidsLimitHit: true }
        && (Outcome.ExitCode == 0 || okCodes.Contains(Outcome.ExitCode ?? -1));
}

/// <summary>
/// The sandbox of one tool task: a swept run directory (home for payload files, the sandbox's own files),
/// the task's workspace mounted at <c>/workspace</c>, the tool's limits, and one deadline for every process the
/// task starts. Each process is its own sandbox run (own control group, killed as a whole on timeout or cancel).
/// </summary>
internal sealed class ToolSandbox : IDisposable
{
    private const int StderrLinesKept = 20;

    private readonly ISandbox _sandbox;
    private readonly ProcessRunner _runner;
    private readonly JobWorkspace _scratch;
    private readonly string _workspace;
    private readonly SandboxLimits _limits;
    private readonly long _maxOutputBytes;
    private readonly TimeProvider _time;
    private readonly long _started;
    private readonly List<Core.Sandbox.ResourceUsage> _usages = [];
    private int _runs;

    public ToolSandbox(ISandbox sandbox, ProcessRunner runner, WorkspaceManager workspaces, string taskId, string? workspace, string tool,
        ToolLimits limits, TimeSpan timeout, SandboxLimits defaults, TimeProvider time)
    {
        _sandbox = sandbox;
        _runner = runner;
        _time = time;
        _started = time.GetTimestamp();
        Tool = tool;
        Timeout = timeout;
        _scratch = workspaces.CreateEmpty($"tool-{taskId}");
        _workspace = workspace ?? _scratch.RepoDir;
        // Output caps the worker's memory for streamed lines; payloads travel as files and are capped by their own checks.
        _maxOutputBytes = limits.MaxBytes + 64 * 1024;
        _limits = defaults with
        {
            Cpus = limits.Cpus,
            MemoryBytes = limits.MemoryBytes,
            Pids = limits.Pids,
            TmpBytes = 16L * 1024 * 1024,
            OpenFiles = 256,
            // Web tools write their response to a file: the rlimit is the last stop for a body that outgrows the limit.
            FileSizeBytes = ToolNames.IsWeb(tool) ? limits.MaxBytes + 64 * 1024 : defaults.FileSizeBytes,
        };
    }

    public string Tool { get; }
    public TimeSpan Timeout { get; }

    /// <summary>The home directory on the host: payload files pass through it (<c>in</c>, <c>out</c>).</summary>
    public string HostHome => _scratch.HomeDir;

    public TaskUsage Usage => new()
    {
        PeakMemoryBytes = _usages.Select(u => u.PeakMemoryBytes ?? 0).DefaultIfEmpty().Max(),
        CpuSeconds = _usages.Sum(u => u.CpuSeconds ?? 0),
        WallSeconds = Math.Round(_time.GetElapsedTime(_started).TotalSeconds, 3),
        OutOfMemory = _usages.Any(u => u.OutOfMemoryKilled),
        PidsLimitHit = _usages.Any(u => u.PidsLimitHit),
    };

    /// <summary>
    /// Runs one process in a fresh sandbox over the workspace. <paramref name="argv"/> gets the run to name paths as seen inside.
    /// With <paramref name="egress"/> (the web tools) the run has network full: its way out is an egress proxy on those rules.
    /// </summary>
    public async Task<ToolProcess> RunAsync(Func<SandboxRun, IReadOnlyList<string>> argv, Func<OutputLine, ValueTask>? onLine, CancellationToken cancellationToken, EgressPolicy? egress = null)
    {
        var remaining = Timeout - _time.GetElapsedTime(_started);
        if (remaining <= TimeSpan.Zero)
            return new ToolProcess(new ProcessOutcome(ProcessEnd.TimedOut, null, 0, false, TimeSpan.Zero), null, []);
        var runId = $"tool-{Path.GetFileName(_scratch.Root)}-{++_runs}";
        // The tool's own result says what it fetched; its proxy's decisions are not kept.
        using var proxy = egress is null ? null : new EgressProxy(egress, null, new EgressOptions(), new EgressJournal(_ => ValueTask.CompletedTask, _ => { }));
        using var run = _sandbox.Prepare(new SandboxRequest(runId, _workspace, _scratch.HomeDir, _scratch.SandboxDir, egress is null ? NetworkMode.None : NetworkMode.Full, null, _limits)
        {
            Egress = proxy,
        });
        var environment = new Dictionary<string, string>
        {
            ["PATH"] = "/usr/bin:/bin",
            ["LC_ALL"] = "C.UTF-8",
            ["HOME"] = run.HomePath,
            ["TMPDIR"] = run.TmpPath,
        };
        var stderr = new Queue<string>();
        var outcome = await _runner.RunAsync(
            new ProcessSpec(argv(run), run.WorkspacePath, environment, remaining, _maxOutputBytes),
            line =>
            {
                if (line.Stream == "stderr")
                {
                    stderr.Enqueue(line.Text);
                    if (stderr.Count > StderrLinesKept)
                        stderr.Dequeue();
                }
                return onLine?.Invoke(line) ?? ValueTask.CompletedTask;
            },
            cancellationToken,
            run).ConfigureAwait(false);
        var usage = run.ReadUsage();
        if (usage is not null)
            _usages.Add(usage);
        return new ToolProcess(outcome, usage, [.. stderr]);
    }

    /// <summary>The result for a process that did not succeed: timeout, cancel, a limit hit, or the tool's own error.</summary>
    public TaskResult Failure(ToolProcess process, string? cancelReason)
    {
        var limit = _limits;
        var (state, code, error) = process switch
        {
            { Outcome.End: ProcessEnd.TimedOut } => (TaskState.TimedOut, ErrorCode.Timeout, $"{Tool} did not finish within {Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)}s and was killed"),
            { Outcome.End: ProcessEnd.Cancelled } => (TaskState.Cancelled, ErrorCode.Cancelled, $"{Tool} cancelled: {cancelReason ?? "on request"}"),
            { Usage.OutOfMemoryKilled: true } => (TaskState.Failed, ErrorCode.LimitExceeded, $"{Tool} exceeded its memory limit of {limit.MemoryBytes / (1024 * 1024)} MiB and was killed"),
            { Usage.PidsLimitHit: true } => (TaskState.Failed, ErrorCode.LimitExceeded, $"{Tool} hit its limit of {limit.Pids} processes"),
            _ => (TaskState.Failed, ErrorCode.ToolFailed, $"{Tool} failed (exit code {process.Outcome.ExitCode}){(process.Stderr.Count > 0 ? ": " + string.Join(" / ", process.Stderr.TakeLast(3)) : "")}"),
        };
        var result = new TaskResult { State = state, Code = code, Error = error, Usage = Usage };
        if (process.Outcome.ExitCode is { } exit)
            result.ExitCode = exit;
        return result;
    }

    public void Dispose() => _scratch.Dispose();
}
