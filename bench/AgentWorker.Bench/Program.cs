using AgentWorker.Bench;

const string Usage =
    "usage: AgentWorker.Bench sqlite [--jobs N] [--workers C] [--data-dir DIR]\n" +
    "       AgentWorker.Bench sandbox [--runs N] [--concurrency C]\n" +
    "       AgentWorker.Bench summarize < results.jsonl";

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
    case "summarize":
        return Summary.Run(Console.In, Console.Out, out var summaryError) ? 0 : Fail(2, summaryError);
    case "-h" or "--help":
        Console.WriteLine(Usage);
        return 0;
    case null:
        return Fail(2, "missing command (sqlite, sandbox or summarize); --help shows usage");
    default:
        return Fail(2, $"unknown command '{args[0]}' (expected sqlite, sandbox or summarize)");
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
