using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace AgentWorker.Bench;

/// <summary>
/// The real <c>agent-worker</c> binary as a user starts it: wall time of <c>stats</c> (default SQLite backend), and
/// time to /ready plus resident memory of an idle <c>serve</c>. Next to it, in the same run, the floor of any .NET
/// program on this machine: this bench's own executable doing nothing.
/// </summary>
internal static class StartupBench
{
    private static readonly TimeSpan ReadyDeadline = TimeSpan.FromSeconds(60);

    public static async Task<string> RunAsync(StartupArguments arguments, CancellationToken cancellationToken)
    {
        var root = Path.Combine(Path.GetTempPath(), $"agent-worker-startup-bench-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(root);
            string[] common = ["--data-dir", Path.Combine(root, "data"), "--work-dir", Path.Combine(root, "work")];
            var floor = new List<(double Wall, double Cpu)>();
            var stats = new List<(double Wall, double Cpu)>();
            // The first run creates the database: not what a user sees later.
            await RunToEndAsync(arguments, arguments.Binary, ["stats", .. common], cancellationToken);
            for (var i = 0; i < arguments.Runs; i++)
            {
                floor.Add(await RunToEndAsync(arguments, Environment.ProcessPath!, ["noop"], cancellationToken));
                stats.Add(await RunToEndAsync(arguments, arguments.Binary, ["stats", .. common], cancellationToken));
            }

            var ready = new List<double>();
            var rss = new List<(double Total, double Anon, double File, double Shmem)>();
            for (var i = 0; i < arguments.ServeRuns; i++)
            {
                var (readyMs, memory) = await ServeAsync(arguments, common, cancellationToken);
                ready.Add(readyMs);
                rss.Add(memory);
            }

            return new JsonObject
            {
                ["bench"] = "startup",
                ["peer"] = "agent-worker",
                ["label"] = arguments.Label,
                ["env"] = string.Join(' ', arguments.Environment.Select(e => $"{e.Key}={e.Value}")),
                ["runs"] = arguments.Runs,
                ["floor_ms_p50"] = Math.Round(Percentiles.Of(floor.Select(f => f.Wall)).P50, 1),
                ["floor_cpu_ms_p50"] = Math.Round(Percentiles.Of(floor.Select(f => f.Cpu)).P50, 1),
                ["stats_ms_p50"] = Math.Round(Percentiles.Of(stats.Select(s => s.Wall)).P50, 1),
                ["stats_ms_min"] = Math.Round(stats.Min(s => s.Wall), 1),
                ["stats_cpu_ms_p50"] = Math.Round(Percentiles.Of(stats.Select(s => s.Cpu)).P50, 1),
                ["serve_runs"] = arguments.ServeRuns,
                ["serve_idle_s"] = arguments.Idle.TotalSeconds,
                ["serve_ready_ms_p50"] = Math.Round(Percentiles.Of(ready).P50, 1),
                ["serve_rss_mb_p50"] = Math.Round(Percentiles.Of(rss.Select(r => r.Total)).P50, 1),
                ["serve_rss_anon_mb_p50"] = Math.Round(Percentiles.Of(rss.Select(r => r.Anon)).P50, 1),
                ["serve_rss_file_mb_p50"] = Math.Round(Percentiles.Of(rss.Select(r => r.File)).P50, 1),
                ["serve_rss_shmem_mb_p50"] = Math.Round(Percentiles.Of(rss.Select(r => r.Shmem)).P50, 1),
            }.ToJsonString();
        }
        finally
        {
            if (Directory.Exists(root))
                Directory.Delete(root, recursive: true);
        }
    }

    private static ProcessStartInfo StartInfo(StartupArguments arguments, string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        // The worker picks its backend from these; the measure is of the default (SQLite).
        foreach (var inherited in new[] { "REDIS_URL", "POSTGRES_URL", "POSTGRES_DSN", "AGENT_WORKER_BACKEND" })
            start.Environment.Remove(inherited);
        foreach (var (name, value) in arguments.Environment)
            start.Environment[name] = value;
        return start;
    }

    /// <summary>Milliseconds from starting the process to its exit, and the CPU milliseconds it used.</summary>
    private static async Task<(double Wall, double Cpu)> RunToEndAsync(StartupArguments arguments, string program, IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var cpu = ProcessCpu.Milliseconds().Children;
        var started = Stopwatch.GetTimestamp();
        using var process = Process.Start(StartInfo(arguments, program, args))!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', args)} exited with {process.ExitCode}: {(await errors).Trim()} {(await output).Trim()}");
        return (elapsed, ProcessCpu.Milliseconds().Children - cpu);
    }

    /// <summary>Starts serve, waits for /ready, lets it sit idle, then reads its resident memory (MiB) from /proc.</summary>
    private static async Task<(double ReadyMs, (double Total, double Anon, double File, double Shmem) Rss)> ServeAsync(StartupArguments arguments, string[] common, CancellationToken cancellationToken)
    {
        int port;
        using (var listener = new TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        }
        var started = Stopwatch.GetTimestamp();
        using var process = Process.Start(StartInfo(arguments, arguments.Binary, ["serve", "--port", port.ToString(CultureInfo.InvariantCulture), .. common]))!;
        // Drained so a chatty log never blocks the worker.
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            double readyMs;
            while (true)
            {
                if (process.HasExited)
                    throw new InvalidOperationException($"serve exited with {process.ExitCode}: {(await errors).Trim()} {(await output).Trim()}");
                if (Stopwatch.GetElapsedTime(started) > ReadyDeadline)
                    throw new TimeoutException($"serve was not ready within {ReadyDeadline.TotalSeconds:0}s");
                try
                {
                    if ((await client.GetAsync("/ready", cancellationToken)).IsSuccessStatusCode)
                    {
                        readyMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                }
                await Task.Delay(10, cancellationToken);
            }
            // Idle on purpose: what a worker with an empty queue holds, after start-up garbage had time to be collected.
            await Task.Delay(arguments.Idle, cancellationToken);
            var status = await File.ReadAllLinesAsync($"/proc/{process.Id}/status", cancellationToken);
            double Field(string name) =>
                long.Parse(status.Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
            return (readyMs, (Field("VmRSS"), Field("RssAnon"), Field("RssFile"), Field("RssShmem")));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }
}

/// <summary>Arguments of the <c>startup</c> command.</summary>
internal sealed record StartupArguments(string Binary, int Runs, int ServeRuns, TimeSpan Idle, string Label, IReadOnlyList<KeyValuePair<string, string>> Environment)
{
    public static StartupArguments Parse(ReadOnlySpan<string> args)
    {
        var options = BenchOptions.Parse(args, "--binary", "--runs", "--serve-runs", "--idle-seconds", "--label", "--env");
        var environment = options.All("--env").Select(value => value.IndexOf('=', StringComparison.Ordinal) is var equals and > 0
            ? new KeyValuePair<string, string>(value[..equals], value[(equals + 1)..])
            : throw new UsageException($"--env must be NAME=VALUE, got '{value}'")).ToList();
        var binary = options.Text("--binary") ?? DefaultBinary()
            ?? throw new UsageException("no agent-worker build found above this bench (build src/AgentWorker in Release or pass --binary PATH)");
        if (!File.Exists(binary))
            throw new UsageException($"--binary '{binary}' does not exist");
        return new StartupArguments(
            Path.GetFullPath(binary),
            options.Number("--runs", 20, 1000),
            options.Number("--serve-runs", 3, 1000),
            TimeSpan.FromSeconds(options.Number("--idle-seconds", 5, 1000)),
            options.Text("--label") ?? "default",
            environment);
    }

    /// <summary>src/AgentWorker/bin/Release/net10.0/agent-worker of the checkout this bench was built in.</summary>
    private static string? DefaultBinary()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "AgentWorker", "bin", "Release", "net10.0", "agent-worker");
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }
}
