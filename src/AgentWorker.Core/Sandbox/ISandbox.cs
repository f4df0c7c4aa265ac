using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Sandbox;

/// <summary>Isolates agent processes. Implementations: bubblewrap (default) and none (explicit opt-out).</summary>
public interface ISandbox
{
    string Name { get; }

    /// <summary>Sets up one run. Throws <see cref="SandboxException"/> when it cannot (the job then fails: fail closed).</summary>
    SandboxRun Prepare(SandboxRequest request);
}

/// <summary>
/// One run: host directories of the attempt (<paramref name="Workspace"/> is the clone, <paramref name="Home"/> an empty
/// writable home, <paramref name="Scratch"/> the sandbox's own files), the network mode and the limits.
/// </summary>
public sealed record SandboxRequest(string RunId, string Workspace, string Home, string Scratch, NetworkMode Network, string? McpUrl, SandboxLimits Limits)
{
    /// <summary>A host directory the agent may write files to keep into; visible at <see cref="SandboxRun.ArtifactsPath"/>.</summary>
    public string? Artifacts { get; init; }

    /// <summary>Serves the agent's HTTP and SOCKS5 proxy ports in networks allowlist and full (the caller owns it).</summary>
    public Egress.EgressProxy? Egress { get; init; }

    /// <summary>The run's door to the model gateway, served on <see cref="Gateway.GatewayRun.InsidePort"/> in any network (the caller owns it).</summary>
    public Gateway.GatewayRun? Gateway { get; init; }
}

/// <summary>A prepared run: how paths look inside, how to launch the agent, and how to kill and measure it.</summary>
public abstract class SandboxRun : IDisposable
{
    /// <summary>The workspace as the agent sees it (what <c>{workspace}</c> expands to).</summary>
    public abstract string WorkspacePath { get; }

    public abstract string HomePath { get; }
    public abstract string TmpPath { get; }

    /// <summary>The artifacts folder as the agent sees it (null when the run has none).</summary>
    public virtual string? ArtifactsPath => null;

    /// <summary>The MCP URL as the agent must use it (may point at the run's MCP port).</summary>
    public virtual string? McpUrl(string? jobMcpUrl) => jobMcpUrl;

    /// <summary>Where the agent reaches the model gateway (null when the run has none).</summary>
    public virtual Uri? GatewayUrl => null;

    /// <summary>Variables the agent gets for its network (the proxy settings in networks allowlist and full).</summary>
    public virtual IReadOnlyDictionary<string, string> NetworkVariables => new Dictionary<string, string>();

    /// <summary>The network namespace the launcher must start in, when the worker built it; null otherwise.</summary>
    public virtual Microsoft.Win32.SafeHandles.SafeFileHandle? NetworkNamespace => null;

    /// <summary>After the agent ended: waits for the connections it left (so every egress decision is recorded), then stops serving.</summary>
    public virtual Task CloseNetworkAsync() => Task.CompletedTask;

    /// <summary>The host path behind a path the agent sees, to check an agent binary exists before starting.</summary>
    public virtual string ToHostPath(string insidePath) => insidePath;

    /// <summary>The process to start on the host for <paramref name="agent"/> (argv and environment as seen inside).</summary>
    public abstract ProcessSpec Wrap(ProcessSpec agent);

    /// <summary>
    /// True when <see cref="KillAll"/> alone ends every process the run started (its control group holds them all), so the
    /// process runner skips its own process-group kill and /proc sweep, and the separate session when nothing needs it.
    /// </summary>
    public virtual bool HoldsAllProcesses => false;

    /// <summary>Kills everything the run started (called on timeout, cancel and exit).</summary>
    public virtual void KillAll()
    {
    }

    public virtual ResourceUsage? ReadUsage() => null;

    public virtual void Dispose() => GC.SuppressFinalize(this);
}

/// <summary>The sandbox cannot be set up for a run, or at all on this host.</summary>
public sealed class SandboxException(string message) : Exception(message);
