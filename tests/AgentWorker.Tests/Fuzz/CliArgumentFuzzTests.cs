using AgentWorker.Cli;
using AgentWorker.Configuration;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using FsCheck;
using FsCheck.Fluent;

namespace AgentWorker.Tests.Fuzz;

/// <summary>
/// Generated command lines: the parser in-process for many, the real binary for a bounded number (each is a
/// process start). A command line ends in success, or in exit 1 or 2 with one line naming the problem; never in
/// a stack trace.
/// </summary>
public sealed class CliArgumentFuzzTests : IDisposable
{
    private const int ParseCases = 3_000;
    private const int ProcessCases = 40;

    private readonly TempDirectory _dir = new("aw-fuzz-cli");

    // Commands that end by themselves: serve, run and demo keep running, and `agent exec` audits whatever directory it is given.
    private static readonly string[][] Commands =
    [
        [], ["enqueue"], ["stats"], ["peek"], ["recover"], ["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"],
        ["jobs", "logs"], ["agents", "list"], ["config", "show"], ["config"], ["nonsense"],
    ];

    private static readonly string[] Options =
    [
        "--job-id", "--repo-url", "--branch", "--commit", "--prompt", "--mcp-connection-url", "--agent", "--mode", "--network", "--allow-host", "--timeout-seconds",
        "--max-attempts", "--priority", "--count", "--state", "--limit", "--offset", "--help", "-h", "-?", "--version", "--", "-", "--=", "---x",
        .. Settings.All.Where(s => s != Settings.RedisUrl && s != Settings.PostgresUrl && s != Settings.Backend).Select(s => s.Flag),
    ];

    // argv cannot carry NUL; absolute paths and '..' are left out so that path flags stay inside the run's directory.
    private static readonly Gen<string> Word = Gen.Frequency(
            (3, Gen.Elements(Options)),
            (2, Gen.Elements("0", "-1", "1001", "2147483648", "x", "", " ", "queued", "sleeping", "ssot_auditor", "ghost", "job-1", "@missing-response-file", "dry_run", "apply", "relative/dir", "a=b", "--limit=5", "--port=http")),
            (2, FuzzInputs.Text))
        .Where(w => !w.Contains('\0', StringComparison.Ordinal) && !w.StartsWith('/') && !w.Contains("..", StringComparison.Ordinal) && w.Length < 2_000);

    private static Gen<string[]> CommandLine(bool withFollow) => Gen.Zip(Gen.Elements(Commands), Gen.Choose(0, 6).SelectMany(n => Word.ArrayOf(n)))
        .Select(t => (string[])[.. t.Item1, .. t.Item2])
        .Where(args => withFollow || !args.Any(a => a is "-f" or "--follow"));

    [Fact]
    public void Parse_AnyArguments_NeverThrows()
    {
        var property = Prop.ForAll(CommandLine(withFollow: true).ToArbitrary(), args =>
        {
            var result = CliApp.Create().Parse(args);
            Assert.All(result.Errors, e => Assert.False(string.IsNullOrWhiteSpace(e.Message)));
        });

        Check.One(Config.QuickThrowOnFailure.WithMaxTest(ParseCases), property);
    }

    [Fact]
    public async Task RealBinary_AnyArguments_EndsCleanlyWithOneLineErrors()
    {
        var seed = FuzzInputs.NewSeed();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var environment = new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = _dir.Combine("data"), ["WORK_DIR"] = _dir.Combine("work") };

        await Parallel.ForEachAsync(FuzzInputs.Sample(CommandLine(withFollow: false), ProcessCases, seed), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (args, _) =>
        {
            var process = WorkerProcess.StartIn(_dir.Path, environment, args);
            await using (process)
            {
                var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
                var output = process.Output;
                var clean = exit switch
                {
                    0 => !output.Contains("Unhandled exception", StringComparison.Ordinal),
                    1 or 2 => output.Split('\n', StringSplitOptions.RemoveEmptyEntries) is [var line] && line.StartsWith("agent-worker: ", StringComparison.Ordinal),
                    _ => false,
                };
                if (!clean)
                    failures.Enqueue($"agent-worker {string.Join(' ', args.Select(a => $"'{a}'"))} → exit {exit}\n{Cut(output)}");
            }
        });

        Assert.True(failures.IsEmpty, $"seed {seed}: {failures.Count} of {ProcessCases} command lines ended badly; first:\n{string.Join("\n", failures.Take(3))}");
    }

    private static string Cut(string output) => output.Length <= 2_000 ? output : output[..2_000] + "…";

    public void Dispose() => _dir.Dispose();
}
