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
/// time for latency, then many at once for sandboxed runs per second.
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
            // Alternate, so drift of the machine hits both sides alike.
            for (var i = 0; i < runs; i++)
            {
                plainTimes.Add(await TimeOneAsync(runner, plain, root, $"p{i}", cancellationToken));
                sandboxedTimes.Add(await TimeOneAsync(runner, bubblewrap, root, $"s{i}", cancellationToken));
            }

            var clock = Stopwatch.StartNew();
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                int mine;
                while ((mine = Interlocked.Increment(ref next)) < runs)
                    await TimeOneAsync(runner, bubblewrap, root, $"c{mine}", cancellationToken);
            }));
            var perSecond = runs / clock.Elapsed.TotalSeconds;

            var (plainP50, plainP99) = Percentiles.Of(plainTimes);
            var (sandboxedP50, sandboxedP99) = Percentiles.Of(sandboxedTimes);
            var overhead = Percentiles.Of(sandboxedTimes.Zip(plainTimes, (s, p) => s - p));
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
                ["sandboxed_per_s"] = Math.Round(perSecond, 1),
            }.ToJsonString();
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static double Round(double value) => Math.Round(value, 2);

    /// <summary>Milliseconds from preparing the run to having torn it down, as a job pays them.</summary>
    private static async Task<double> TimeOneAsync(ProcessRunner runner, ISandbox sandbox, string root, string name, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(root, name);
        foreach (var sub in new[] { "repo", "home", "sandbox" })
            Directory.CreateDirectory(Path.Combine(dir, sub));
        var started = Stopwatch.GetTimestamp();
        using (var run = sandbox.Prepare(new SandboxRequest($"bench-{Environment.ProcessId}-{name}", Path.Combine(dir, "repo"), Path.Combine(dir, "home"), Path.Combine(dir, "sandbox"), NetworkMode.None, null, new SandboxLimits())))
        {
            var outcome = await runner.RunAsync(
                new ProcessSpec(["true"], run.WorkspacePath, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, TimeSpan.FromSeconds(30), 64 * 1024),
                _ => ValueTask.CompletedTask, cancellationToken, run);
            if (outcome.ExitCode != 0)
                throw new InvalidOperationException($"no-op agent exited with {outcome.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? outcome.End.ToString()} ({sandbox.Name})");
        }
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        Directory.Delete(dir, recursive: true);
        return elapsed;
    }
}
