using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sandbox;

namespace AgentWorker.Bench;

/// <summary>
/// What the sandbox costs a job: a no-op agent (<c>/bin/true</c>) started through the worker's own process runner
/// without a sandbox and inside bubblewrap (cgroups, seccomp, namespaces, set-up and tear-down included), one at a
/// time for latency, then many at once for sandboxed runs per second. Alternating with both, the same no-op runs
/// under bare bubblewrap (the same namespaces, as the same host user, only the mounts <c>true</c> needs) through the
/// same runner, so the sandbox's cost above bubblewrap's own is reported from the same run.
/// </summary>
internal static class SandboxBench
{
    public static async Task<string> RunAsync(int runs, int concurrency, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), $"agent-worker-sandbox-bench-{Guid.NewGuid():N}");
        try
        {
            var bubblewrap = new BubblewrapSandbox(new SandboxOptions { StateDir = Path.Combine(root, "state") }, Cgroups.Detect(), [AppContext.BaseDirectory.TrimEnd('/')], []);
            ISandbox plain = new NoSandbox();
            var runner = new ProcessRunner(TimeProvider.System);
            var plainTimes = new List<double>();
            var sandboxedTimes = new List<double>();
            var bareTimes = new List<double>();
            var bare = BareBubblewrap();
            // Alternate, so drift of the machine hits all sides alike.
            for (var i = 0; i < runs; i++)
            {
                plainTimes.Add(await TimeOneAsync(runner, plain, root, $"p{i}", ["true"], cancellationToken));
                sandboxedTimes.Add(await TimeOneAsync(runner, bubblewrap, root, $"s{i}", ["true"], cancellationToken));
                bareTimes.Add(await TimeOneAsync(runner, plain, root, $"b{i}", bare, cancellationToken, Environment.IsPrivilegedProcess ? "nobody" : null));
            }

            var clock = Stopwatch.StartNew();
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                int mine;
                while ((mine = Interlocked.Increment(ref next)) < runs)
                    await TimeOneAsync(runner, bubblewrap, root, $"c{mine}", ["true"], cancellationToken);
            }));
            var perSecond = runs / clock.Elapsed.TotalSeconds;

            var (plainP50, plainP99) = Percentiles.Of(plainTimes);
            var (sandboxedP50, sandboxedP99) = Percentiles.Of(sandboxedTimes);
            var (bareP50, bareP99) = Percentiles.Of(bareTimes);
            var overhead = Percentiles.Of(sandboxedTimes.Zip(plainTimes, (s, p) => s - p));
            var bareOverhead = Percentiles.Of(bareTimes.Zip(plainTimes, (b, p) => b - p));
            return new JsonObject
            {
                ["bench"] = "sandbox",
                ["peer"] = "agent-worker",
                ["runs"] = runs,
                ["concurrency"] = concurrency,
                ["cgroups"] = bubblewrap.Cgroups.Version,
                ["plain_ms_p50"] = Round(plainP50),
                ["plain_ms_p99"] = Round(plainP99),
                ["sandboxed_ms_p50"] = Round(sandboxedP50),
                ["sandboxed_ms_p99"] = Round(sandboxedP99),
                ["overhead_ms_p50"] = Round(overhead.P50),
                ["overhead_ms_p99"] = Round(overhead.P99),
                ["bare_bwrap_ms_p50"] = Round(bareP50),
                ["bare_bwrap_ms_p99"] = Round(bareP99),
                ["bare_bwrap_overhead_ms_p50"] = Round(bareOverhead.P50),
                ["bare_bwrap_overhead_ms_p99"] = Round(bareOverhead.P99),
                ["ratio_sandboxed_vs_bare_bwrap_p50"] = Math.Round(sandboxedP50 / bareP50, 3),
                ["ratio_overhead_vs_bare_bwrap_p50"] = Math.Round(overhead.P50 / bareOverhead.P50, 3),
                ["sandboxed_per_s"] = Math.Round(perSecond, 1),
            }.ToJsonString();
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    internal static double Round(double value) => Math.Round(value, 2);

    /// <summary>
    /// bubblewrap with the namespaces, session and capability drop of our sandbox but nothing else: /usr and the
    /// top-level links into it, a fresh /proc and /dev. A root bench starts it as nobody, as the sandbox starts its launcher.
    /// </summary>
    private static List<string> BareBubblewrap()
    {
        List<string> argv =
        [
            "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr",
        ];
        foreach (var path in new[] { "/bin", "/sbin", "/lib", "/lib64" })
        {
            if (new FileInfo(path).LinkTarget is { } target)
                argv.AddRange(["--symlink", target, path]);
            else if (Directory.Exists(path))
                argv.AddRange(["--ro-bind", path, path]);
        }
        argv.AddRange(["--proc", "/proc", "--dev", "/dev", "--", "true"]);
        return argv;
    }

    /// <summary>Milliseconds from preparing the run to having torn it down, as a job pays them. <c>shape</c> changes the request (another network mode, say); without it the run has network none.</summary>
    internal static async Task<double> TimeOneAsync(ProcessRunner runner, ISandbox sandbox, string root, string name, IReadOnlyList<string> argv, CancellationToken cancellationToken, string? userName = null, Func<SandboxRequest, SandboxRequest>? shape = null)
    {
        var dir = Path.Combine(root, name);
        foreach (var sub in new[] { "repo", "home", "sandbox" })
            Directory.CreateDirectory(Path.Combine(dir, sub));
        var started = Stopwatch.GetTimestamp();
        var request = new SandboxRequest($"bench-{Environment.ProcessId}-{name}", Path.Combine(dir, "repo"), Path.Combine(dir, "home"), Path.Combine(dir, "sandbox"), NetworkMode.None, null, new SandboxLimits());
        using (var run = sandbox.Prepare(shape?.Invoke(request) ?? request))
        {
            var outcome = await runner.RunAsync(
                new ProcessSpec(argv, run.WorkspacePath, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, TimeSpan.FromSeconds(30), 64 * 1024, userName),
                _ => ValueTask.CompletedTask, cancellationToken, run);
            if (outcome.ExitCode != 0)
                throw new InvalidOperationException($"no-op agent exited with {outcome.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? outcome.End.ToString()} ({sandbox.Name})");
        }
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        Directory.Delete(dir, recursive: true);
        return elapsed;
    }
}
