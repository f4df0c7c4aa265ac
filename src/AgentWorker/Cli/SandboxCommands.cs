using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sandbox;

namespace AgentWorker.Cli;

/// <summary>`sandbox check` (what isolation this host gives) and `sandbox forward` (the network relay a worker that is not root runs inside the sandbox).</summary>
internal static class SandboxCommands
{
    public static Command Create(CommandAction action)
    {
        var sandbox = new Command("sandbox", "Inspect the agent sandbox.");
        sandbox.Subcommands.Add(new Command("check", "Show what isolation this host provides; exits 1 when the configured sandbox cannot run.").WithAction(action, CheckAsync));
        sandbox.Subcommands.Add(Forward());
        return sandbox;
    }

    private static async Task<int> CheckAsync(CommandContext context, CancellationToken cancellationToken)
    {
        var config = context.Config;
        var rows = new List<IReadOnlyList<string>> { Row("configured sandbox", config.Sandbox.Kind, "") };
        var bwrapVersion = await VersionAsync("bwrap", cancellationToken);
        rows.Add(Row("bubblewrap", bwrapVersion ?? "missing", bwrapVersion is null ? "apt-get install bubblewrap" : ""));
        var userNamespaces = File.Exists("/proc/sys/user/max_user_namespaces") ? File.ReadAllText("/proc/sys/user/max_user_namespaces").Trim() : "unknown";
        rows.Add(Row("user namespaces", userNamespaces == "0" ? "disabled" : $"max {userNamespaces}", userNamespaces == "0" ? "sysctl user.max_user_namespaces" : ""));
        rows.Add(Row("worker user", Environment.UserName, Environment.UserName == "root" ? "agents run as uid 65534 with no capabilities" : ""));
        var cgroups = Cgroups.Detect();
        rows.Add(Row("cgroups", cgroups.Version == 0 ? "unusable" : $"v{cgroups.Version}: {string.Join(", ", cgroups.Controllers)}", cgroups.Problem ?? ""));
        rows.Add(Row("limits enforced", cgroups.Version > 0 ? "memory, pids, cpu (cgroup) + open files, file size, core (rlimit)" : "rlimits only", ""));
        rows.Add(config.Workspace.RunFilesystem is null
            ? Row("disk caps", "after the run", Environment.IsPrivilegedProcess ? "WORKSPACE_TMPFS=off" : "a non-root worker cannot mount a tmpfs per attempt")
            : Row("disk caps", "tmpfs per attempt", $"workspace {config.Workspace.MaxRepoBytes >> 20} MiB, home {config.Workspace.RunFilesystem.HomeBytes >> 20} MiB, artifacts {config.Workspace.RunFilesystem.ArtifactBytes >> 20} MiB"));
        var egress = config.Pipeline.Egress;
        rows.Add(Row("egress", config.Sandbox.Kind == SandboxOptions.None
                ? "none: agents share the host's network (--sandbox none)"
                : NetworkNamespace.CanCreate ? "proxy; namespace built by the worker" : "proxy; relayed over unix sockets (no CAP_SYS_ADMIN)",
            $"allowlist/full through the proxy; private ranges allowed: {(egress.AllowCidrs.Count == 0 ? "none" : string.Join(' ', egress.AllowCidrs))}; "
            + $"pinned names: {(egress.Resolve.Count == 0 ? "none" : string.Join(' ', egress.Resolve))}; per run {egress.MaxConnections} connections, "
            + $"{egress.MaxBytes >> 20} MiB, {egress.IdleTimeout.TotalSeconds:0}s idle"));
        rows.Add(Row("seccomp", SeccompFilter.IsAvailable() ? $"libseccomp, {SeccompFilter.Denied.Count} calls denied" : "libseccomp missing", ""));

        var (ok, detail) = config.Sandbox.Kind == SandboxOptions.None
            ? (true, "not probed: --sandbox none runs agents without isolation")
            : await ProbeAsync(config, cancellationToken);
        rows.Add(Row("probe", ok ? "ok" : "FAILED", detail));
        Output.Table(["CHECK", "RESULT", "NOTE"], rows);
        return ok ? ExitCodes.Ok : ExitCodes.Failure;
    }

    /// <summary>Runs a real sandboxed process and reports what it sees of itself.</summary>
    private static async Task<(bool Ok, string Detail)> ProbeAsync(Configuration.WorkerConfig config, CancellationToken cancellationToken)
    {
        ISandbox sandbox;
        try
        {
            sandbox = WorkerServices.CreateSandbox(config);
        }
        catch (Configuration.ConfigException e)
        {
            return (false, e.Message);
        }
        var root = Path.Combine(Path.GetTempPath(), $"agent-worker-probe-{Guid.NewGuid():N}");
        try
        {
            foreach (var dir in new[] { "repo", "home", "sandbox" })
                Directory.CreateDirectory(Path.Combine(root, dir));
            using var run = sandbox.Prepare(new SandboxRequest($"probe-{Environment.ProcessId}", Path.Combine(root, "repo"), Path.Combine(root, "home"), Path.Combine(root, "sandbox"), NetworkMode.None, null, config.Sandbox.Limits));
            var lines = new List<string>();
            var outcome = await new ProcessRunner(TimeProvider.System).RunAsync(
                new ProcessSpec(["/bin/sh", "-c", "echo uid=$(id -u) $(grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t\\n' '  ')"], run.WorkspacePath,
                    new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, TimeSpan.FromSeconds(30), 64 * 1024),
                line =>
                {
                    lock (lines)
                        lines.Add(line.Text);
                    return ValueTask.CompletedTask;
                },
                cancellationToken, run);
            var text = string.Join(' ', lines).Trim();
            return (outcome.ExitCode == 0, text);
        }
        catch (Exception e) when (e is SandboxException or ProcessStartException or IOException)
        {
            return (false, e.Message);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static Command Forward()
    {
        var forwards = new Option<string[]>("--forward")
        {
            Description = "PORT=SOCKET: listen on 127.0.0.1:PORT and relay each connection to the unix socket SOCKET (repeatable).",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var command = new Argument<string[]>("command") { Description = "The agent command to run once the relay listens.", Arity = ArgumentArity.OneOrMore };
        var forward = new Command("forward", "Relay loopback ports to unix sockets, then run COMMAND (used inside the sandbox by a worker that is not root).") { forwards, command };
        forward.Hidden = true;
        forward.SetAction(async (parse, cancellationToken) =>
        {
            List<(int Port, string Socket)> pairs = [];
            foreach (var entry in parse.GetValue(forwards)!)
            {
                var equals = entry.IndexOf('=', StringComparison.Ordinal);
                if (equals < 0 || !int.TryParse(entry[..equals], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535 || equals == entry.Length - 1)
                {
                    await Console.Error.WriteLineAsync($"agent-worker sandbox forward: --forward: '{entry}' is not PORT=SOCKET");
                    return ExitCodes.Usage;
                }
                pairs.Add((port, entry[(equals + 1)..]));
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var listening = new TaskCompletionSource();
            var relay = RunNetwork.RelayInsideAsync(pairs, listening, stop.Token);
            await Task.WhenAny(listening.Task, relay);
            if (relay.IsFaulted)
            {
                await Console.Error.WriteLineAsync($"agent-worker sandbox forward: {relay.Exception!.InnerException!.Message}");
                return ExitCodes.Failure;
            }
            var argv = parse.GetValue(command)!;
            var start = new ProcessStartInfo(argv[0]) { UseShellExecute = false };
            foreach (var arg in argv.Skip(1))
                start.ArgumentList.Add(arg);
            using var child = Process.Start(start)!;
            await child.WaitForExitAsync(CancellationToken.None);
            await stop.CancelAsync();
            return child.ExitCode;
        });
        return forward;
    }

    private static async Task<string?> VersionAsync(string program, CancellationToken cancellationToken)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(program, "--version") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = await process.StandardOutput.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return output.Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private static IReadOnlyList<string> Row(string check, string result, string note) => [check, result, note];
}
