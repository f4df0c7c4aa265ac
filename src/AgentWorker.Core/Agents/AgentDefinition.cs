using System.Text;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Agents;

/// <summary>
/// One registry entry: how to start an agent. <see cref="Command"/> is an argv list (no shell) in which
/// <c>{prompt}</c>, <c>{prompt_file}</c> and <c>{workspace}</c> are replaced; <see cref="Env"/> names the worker's environment
/// variables the agent may see (everything else is withheld).
/// </summary>
public sealed record AgentDefinition
{
    /// <summary>Linux refuses one argument of 128 KiB or more, its terminating NUL included (MAX_ARG_STRLEN), with E2BIG.</summary>
    public const int MaxArgumentBytes = 128 * 1024 - 1;

    public required string Id { get; init; }
    public required IReadOnlyList<string> Command { get; init; }
    public string? Description { get; init; }
    public int? TimeoutSeconds { get; init; }
    public IReadOnlyList<string> Env { get; init; } = [];

    /// <summary>Fixed variables only this agent gets (e.g. the llm agent's endpoint and key from the worker's settings).</summary>
    public IReadOnlyDictionary<string, string> Variables { get; init; } = new Dictionary<string, string>();
    /// <summary>Network when the job names none.</summary>
    public NetworkMode? Network { get; init; }

    /// <summary>The hosts this agent may reach with network allowlist (registry <c>allowHosts</c>).</summary>
    public IReadOnlyList<HostPattern> AllowHosts { get; init; } = [];

    /// <summary>Jobs may name hosts this agent's list does not (<c>EGRESS_JOBS_MAY_ADD_HOSTS</c>).</summary>
    public bool JobsMayAddHosts { get; init; }

    /// <summary>The model vendors this agent reaches through the worker's gateway (registry <c>gateway:</c>), never with their real keys.</summary>
    public IReadOnlyList<ModelVendor> Gateway { get; init; } = [];

    /// <summary>What one run of this agent may spend through the gateway (registry <c>budget:</c>); a job may narrow it.</summary>
    public ModelBudget Budget { get; init; } = ModelBudget.None;

    /// <summary>Limits for this agent's runs where they differ from the worker's defaults.</summary>
    public AgentLimits? Limits { get; init; }

    public bool BuiltIn { get; init; }

    /// <summary>The prompt is written to the agent's standard input (registry <c>stdin: prompt</c>), which has no size limit.</summary>
    public bool PromptOnStdin { get; init; }

    /// <summary>Whether the command names <c>{prompt_file}</c>, so the prompt must be written to a file the agent can read.</summary>
    public bool UsesPromptFile => Command.Any(arg => arg.Contains(PromptFilePlaceholder, StringComparison.Ordinal));

    private const string PromptFilePlaceholder = "{prompt_file}";

    /// <summary>The network a job gets: its own choice, else this agent's, else none.</summary>
    public NetworkMode NetworkFor(JobSpec job) => job.Network ?? Network ?? NetworkMode.None;

    /// <summary>
    /// The hosts a job's agent may reach: null for any public host (network full), empty for none. A job's own
    /// <see cref="JobSpec.AllowHosts"/> replace this agent's list. When this agent has an allow list and jobs may not
    /// add hosts, the list bounds the job: job entries it does not cover are left out (intake refuses such a job
    /// where it knows the agent, see <see cref="JobNetworkProblem"/>), and a job asking for network full gets this
    /// agent's list.
    /// </summary>
    public IReadOnlyList<HostPattern>? AllowHostsFor(JobSpec job)
    {
        var network = NetworkFor(job);
        if (network is NetworkMode.None or NetworkMode.McpOnly)
            return [];
        var bound = Bounds ? AllowHosts : null;
        if (network == NetworkMode.Full)
            return bound;
        if (job.AllowHosts is not { } asked)
            return Network == NetworkMode.Allowlist ? AllowHosts : [];
        var patterns = asked.Select(HostPattern.Parse);
        return bound is null ? [.. patterns] : [.. patterns.Where(p => bound.Any(a => a.Covers(p)))];
    }

    /// <summary>
    /// Why a job's network request does not fit this agent, as the job field to blame and a message, or null when it
    /// fits: it would widen the agent's allow list, or asks for an allow list without naming hosts when the agent has none.
    /// </summary>
    public (string Field, string Problem)? JobNetworkProblem(JobSpec job)
    {
        if (job.Network == NetworkMode.Allowlist && job.AllowHosts is null && Network != NetworkMode.Allowlist)
            return ("network", $"allowlist needs allowHosts: agent '{Id}' has no allow list of its own");
        if (!Bounds)
            return null;
        var listed = $"agent '{Id}' allows {string.Join(", ", AllowHosts)}; EGRESS_JOBS_MAY_ADD_HOSTS lets jobs widen it";
        if (job.Network == NetworkMode.Full)
            return ("network", $"full would reach any host: {listed}");
        if (job.AllowHosts?.Select(HostPattern.Parse).FirstOrDefault(p => !AllowHosts.Any(a => a.Covers(p))) is { } extra)
            return ("allowHosts", $"'{extra}' is not in the agent's list: {listed}");
        return null;
    }

    /// <summary>Whether this agent's allow list bounds its jobs' lists.</summary>
    private bool Bounds => Network == NetworkMode.Allowlist && !JobsMayAddHosts;

    /// <summary>
    /// The argv with placeholders filled in (paths as the agent sees them). Throws <see cref="ProcessStartException"/>
    /// when an argument is too long for the kernel, instead of letting the start fail with "Argument list too long".
    /// </summary>
    public IReadOnlyList<string> Expand(string workspace, string? prompt, string promptFile)
    {
        string[] argv = [.. Command.Select(arg => arg
            .Replace("{workspace}", workspace, StringComparison.Ordinal)
            .Replace(PromptFilePlaceholder, promptFile, StringComparison.Ordinal)
            .Replace("{prompt}", prompt ?? "", StringComparison.Ordinal))];
        if (argv.Select(Encoding.UTF8.GetByteCount).FirstOrDefault(bytes => bytes > MaxArgumentBytes) is var bytes and > 0)
        {
            throw new ProcessStartException(
                $"an argument of {bytes} bytes (the prompt is {Encoding.UTF8.GetByteCount(prompt ?? "")}) is over the kernel's limit of {MaxArgumentBytes} bytes per argument; "
                + "give long prompts through {prompt_file} or 'stdin: prompt' in the agent's registry entry instead of {prompt}");
        }
        return argv;
    }
}

/// <summary>Per-agent overrides of the sandbox limits (registry <c>limits:</c>).</summary>
public sealed record AgentLimits(int? MemoryMb, int? Pids, double? Cpus, int? TmpMb)
{
    public Sandbox.SandboxLimits Apply(Sandbox.SandboxLimits defaults) => defaults with
    {
        MemoryBytes = MemoryMb is { } memory ? memory * 1024L * 1024 : defaults.MemoryBytes,
        Pids = Pids ?? defaults.Pids,
        Cpus = Cpus ?? defaults.Cpus,
        TmpBytes = TmpMb is { } tmp ? tmp * 1024L * 1024 : defaults.TmpBytes,
    };
}
