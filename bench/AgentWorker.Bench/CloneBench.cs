using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Bench;

/// <summary>
/// Cold and repeat clones of one repository through the worker's <see cref="WorkspaceManager"/>, next to plain
/// <c>git clone --depth 1</c> (what the worker runs without the cache) and git's own <c>--reference</c> clone, in one
/// run, alternating. Each sample is the wall time of one clone and the CPU time of the processes it started.
/// <c>checkout</c> is the floor of every clone: writing the working tree and index from objects already on disk.
/// </summary>
internal static class CloneBench
{
    private static readonly string[] Measures = ["plain", "reference", "checkout", "direct", "cold", "repeat"];

    public static async Task<string> RunAsync(int files, int runs, string parent, bool loose, CancellationToken cancellationToken)
    {
        var root = Path.Combine(parent, $"agent-worker-clone-bench-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(root);
            var remote = Path.Combine(root, "remote.git");
            CreateRepository(remote, files, loose);
            var url = new Uri(remote).AbsoluteUri;
            var reference = Path.Combine(root, "reference.git");
            Git(root, "clone", "--bare", "--quiet", "--", url, reference);

            var runner = new ProcessRunner(TimeProvider.System);
            var options = new WorkspaceOptions { WorkDir = Path.Combine(root, "work") };
            var direct = new WorkspaceManager(options, runner, NullLogger<WorkspaceManager>.Instance);
            var cached = new WorkspaceManager(options with { CloneCache = new CloneCacheOptions { Dir = Path.Combine(root, "cache") } }, runner, NullLogger<WorkspaceManager>.Instance);
            var job = new JobSpec { Id = "bench", Repo = new RepoRef(remote) };
            // The repeat clones find the mirror made here.
            using (await cached.CreateAsync(job, cancellationToken))
            {
            }

            var samples = Measures.ToDictionary(m => m, _ => (Wall: new List<double>(), Cpu: new List<double>(), Self: new List<double>()));
            for (var run = 0; run < runs; run++)
            {
                // A different measure goes first each round, so a slow stretch of the machine does not always hit the same one.
                for (var i = 0; i < Measures.Length; i++)
                {
                    var measure = Measures[(run + i) % Measures.Length];
                    var destination = Path.Combine(root, $"clone-{run}-{measure}");
                    var coldCache = Path.Combine(root, $"cache-cold-{run}");
                    JobWorkspace? workspace = null;
                    if (measure == "checkout")
                        Git(root, "clone", "--quiet", "--shared", "--no-checkout", "--", reference, destination);
                    var (wall, cpu, self) = await TimeAsync(async () =>
                    {
                        switch (measure)
                        {
                            case "plain":
                                Git(root, "clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch", "--", url, destination);
                                break;
                            case "checkout":
                                Git(destination, "checkout", "--quiet", "main");
                                break;
                            case "reference":
                                Git(root, "clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch", "--reference", reference, "--", url, destination);
                                break;
                            default:
                                var manager = measure switch
                                {
                                    "direct" => direct,
                                    "repeat" => cached,
                                    _ => new WorkspaceManager(options with { CloneCache = new CloneCacheOptions { Dir = coldCache } }, runner, NullLogger<WorkspaceManager>.Instance),
                                };
                                workspace = await manager.CreateAsync(job, cancellationToken);
                                break;
                        }
                    });
                    // Removing the workspace is not part of the clone (nor is removing the plain clone below).
                    workspace?.Dispose();
                    samples[measure].Wall.Add(wall);
                    samples[measure].Cpu.Add(cpu);
                    samples[measure].Self.Add(self);
                    foreach (var leftover in new[] { destination, coldCache }.Where(Directory.Exists))
                        Directory.Delete(leftover, recursive: true);
                }
            }

            var result = new JsonObject { ["bench"] = "clone", ["peer"] = "agent-worker", ["dir"] = parent, ["remote"] = loose ? "loose" : "packed", ["files"] = files, ["runs"] = runs };
            foreach (var measure in Measures)
            {
                result[$"{measure}_ms_p50"] = Math.Round(Percentiles.Of(samples[measure].Wall).P50, 1);
                result[$"{measure}_cpu_ms_p50"] = Math.Round(Percentiles.Of(samples[measure].Cpu).P50, 1);
                result[$"{measure}_self_cpu_ms_p50"] = Math.Round(Percentiles.Of(samples[measure].Self).P50, 1);
            }
            // The ratios of the medians: above 1 means the repeat clone is that many times faster than plain git.
            result["ratio_repeat_vs_plain"] = Ratio(samples["plain"].Wall, samples["repeat"].Wall);
            result["ratio_repeat_vs_plain_cpu"] = Ratio(samples["plain"].Cpu, samples["repeat"].Cpu);
            result["ratio_reference_vs_plain"] = Ratio(samples["plain"].Wall, samples["reference"].Wall);
            result["ratio_cold_vs_plain"] = Ratio(samples["plain"].Wall, samples["cold"].Wall);
            return result.ToJsonString();
        }
        finally
        {
            if (Directory.Exists(root))
                Directory.Delete(root, recursive: true);
        }
    }

    private static double Ratio(List<double> baseline, List<double> measured) =>
        Math.Round(Percentiles.Of(baseline).P50 / Math.Max(Percentiles.Of(measured).P50, 0.001), 2);

    /// <summary>
    /// Wall milliseconds; CPU milliseconds of the child processes that ended meanwhile; CPU milliseconds of this process
    /// (the worker's own share of a clone through <see cref="WorkspaceManager"/>). CPU times have a 10 ms resolution.
    /// </summary>
    private static async Task<(double Wall, double Children, double Self)> TimeAsync(Func<Task> action)
    {
        var (children, self) = ProcessCpu.Milliseconds();
        var started = Stopwatch.GetTimestamp();
        await action();
        var wall = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var (childrenAfter, selfAfter) = ProcessCpu.Milliseconds();
        return (wall, childrenAfter - children, selfAfter - self);
    }

    /// <summary>
    /// A bare repository with <paramref name="files"/> text files of 1-4 KB in directories of 30, and 20 later commits
    /// that each change 100 files: packed the way a hosting service keeps them, or with every object loose, as a
    /// self-hosted remote holds small pushes until its next gc (a clone then has to compress the whole snapshot).
    /// </summary>
    private static void CreateRepository(string bare, int files, bool loose)
    {
        Git(Path.GetDirectoryName(bare)!, "init", "--bare", "--quiet", "--initial-branch", "main", bare);
        var random = new Random(1);
        var words = Enumerable.Range(0, 2000).Select(_ => new string([.. Enumerable.Range(0, random.Next(3, 10)).Select(_ => (char)('a' + random.Next(26)))])).ToArray();
        var contents = Enumerable.Range(0, files).Select(_ =>
        {
            var text = new StringBuilder();
            for (var line = random.Next(20, 80); line > 0; line--)
                text.AppendJoin(' ', Enumerable.Range(0, 8).Select(_ => words[random.Next(words.Length)])).Append('\n');
            return text.ToString();
        }).ToArray();
        static string PathOf(int file) => $"dir{file / 30:D3}/file{file:D4}.txt";

        var stream = new StringBuilder();
        void Commit(int number, IEnumerable<int> changed)
        {
            var message = number == 0 ? "initial" : $"change {number}";
            stream.Append(CultureInfo.InvariantCulture, $"commit refs/heads/main\ncommitter bench <bench@example.invalid> {1_700_000_000 + number * 60} +0000\n");
            stream.Append(CultureInfo.InvariantCulture, $"data {Encoding.UTF8.GetByteCount(message)}\n{message}\n");
            foreach (var file in changed)
                stream.Append(CultureInfo.InvariantCulture, $"M 100644 inline {PathOf(file)}\ndata {Encoding.UTF8.GetByteCount(contents[file])}\n{contents[file]}\n");
        }
        Commit(0, Enumerable.Range(0, files));
        for (var number = 1; number <= 20; number++)
        {
            var changed = Enumerable.Range(0, 100).Select(_ => random.Next(files)).Distinct().ToArray();
            foreach (var file in changed)
                contents[file] += $"change {number} {random.Next()}\n";
            Commit(number, changed);
        }
        GitWithInput(bare, stream.ToString(), "fast-import", "--quiet");
        Git(bare, "gc", "--quiet");
        if (!loose)
            return;
        foreach (var pack in Directory.GetFiles(Path.Combine(bare, "objects", "pack"), "*.pack"))
        {
            var moved = Path.Combine(bare, Path.GetFileName(pack));
            File.Move(pack, moved);
            File.Delete(Path.ChangeExtension(pack, ".idx"));
            File.Delete(Path.ChangeExtension(pack, ".rev"));
            using var unpack = Process.Start(new ProcessStartInfo("sh", ["-c", "git unpack-objects -q < \"$0\"", moved]) { WorkingDirectory = bare })!;
            unpack.WaitForExit();
            if (unpack.ExitCode != 0)
                throw new InvalidOperationException($"git unpack-objects of {moved} failed");
            File.Delete(moved);
        }
    }

    private static void Git(string directory, params string[] args) => GitWithInput(directory, null, args);

    private static void GitWithInput(string directory, string? input, params string[] args)
    {
        var start = new ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardInput = input is not null, RedirectStandardError = true };
        // Like a user at a shell, minus their own git configuration.
        start.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        start.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var git = Process.Start(start)!;
        var errors = git.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            try
            {
                git.StandardInput.Write(input);
                git.StandardInput.Close();
            }
            catch (IOException)
            {
                // git stopped reading: its error says why.
            }
        }
        git.WaitForExit();
        if (git.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed: {errors.Result.Trim()}");
    }
}
