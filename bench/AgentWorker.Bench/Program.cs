using AgentWorker.Bench;

const string Usage =
    "usage: AgentWorker.Bench sqlite [--jobs N] [--workers C] [--data-dir DIR]\n" +
    "       AgentWorker.Bench sandbox [--runs N] [--concurrency C]\n" +
    "       AgentWorker.Bench summarize < results.jsonl\n" +
    "       AgentWorker.Bench clone [--files N] [--runs N] [--dir DIR] [--remote packed|loose]\n" +
    "       AgentWorker.Bench startup [--binary PATH] [--runs N] [--serve-runs N] [--idle-seconds S] [--label L] [--env NAME=VALUE]...";

switch (args.FirstOrDefault())
{
    case "sqlite":
        if (!BenchArguments.TryParse(args.AsSpan(1), out var arguments, out var error))
            return Fail(2, error);
        using (var cancel = new CancellationTokenSource())
        {
            // Ctrl+C cancels the run instead of killing the process, so the temporary database is still deleted.
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                cancel.Cancel();
            };
            try
            {
                var result = await SqliteQueueBench.RunAsync(arguments, cancel.Token);
                Console.WriteLine(result.ToJson());
                return 0;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                return Fail(130, "interrupted");
            }
            catch (Exception e)
            {
                return Fail(1, $"sqlite run failed: {e.GetType().Name}: {e.Message}");
            }
        }
    case "sandbox":
        if (!TryOption(args, "--runs", 300, out var runs, out var runsError) || !TryOption(args, "--concurrency", 4, out var concurrency, out runsError))
            return Fail(2, runsError);
        Console.WriteLine(await SandboxBench.RunAsync(runs, concurrency, CancellationToken.None));
        return 0;
    case "clone":
        if (!TryOption(args, "--files", 3000, out var files, out var cloneError) || !TryOption(args, "--runs", 9, out var cloneRuns, out cloneError))
            return Fail(2, cloneError);
        var cloneDir = Array.IndexOf(args, "--dir") is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : Path.GetTempPath();
        if (!Directory.Exists(cloneDir))
            return Fail(2, $"--dir '{cloneDir}' is not an existing directory");
        var remote = Array.IndexOf(args, "--remote") is var r and >= 0 && r + 1 < args.Length ? args[r + 1] : "packed";
        if (remote is not ("packed" or "loose"))
            return Fail(2, $"--remote must be packed or loose, got '{remote}'");
        Console.WriteLine(await CloneBench.RunAsync(files, cloneRuns, cloneDir, remote == "loose", CancellationToken.None));
        return 0;
    case "startup":
        if (!StartupArguments.TryParse(args.AsSpan(1), out var startup, out var startupError))
            return Fail(2, startupError);
        Console.WriteLine(await StartupBench.RunAsync(startup!, CancellationToken.None));
        return 0;
    case "noop":
        // The start-up floor `startup` compares against: a .NET program that does nothing.
        return 0;
    case "summarize":
        return Summary.Run(Console.In, Console.Out, out var summaryError) ? 0 : Fail(2, summaryError);
    case "-h" or "--help":
        Console.WriteLine(Usage);
        return 0;
    case null:
        return Fail(2, "missing command (sqlite, sandbox, clone, startup or summarize); --help shows usage");
    default:
        return Fail(2, $"unknown command '{args[0]}' (expected sqlite, sandbox, clone, startup or summarize)");
}

static bool TryOption(string[] args, string name, int fallback, out int value, out string? error)
{
    var at = Array.IndexOf(args, name);
    error = null;
    value = fallback;
    if (at < 0)
        return true;
    if (at + 1 < args.Length && int.TryParse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture, out value) && value > 0)
        return true;
    error = $"{name} needs a positive whole number";
    return false;
}

static int Fail(int exitCode, string? message)
{
    Console.Error.WriteLine($"AgentWorker.Bench: {message}");
    return exitCode;
}
