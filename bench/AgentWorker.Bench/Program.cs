using AgentWorker.Bench;

const string Usage =
    "usage: AgentWorker.Bench sqlite|redis|postgres [--jobs N] [--workers C] [--data-dir DIR | --url URL]\n" +
    "       AgentWorker.Bench scale --backend sqlite|redis|postgres [--small N] [--large N] [--ops N] [--rounds N] [--data-dir DIR | --url URL]\n" +
    "       AgentWorker.Bench sandbox [--runs N] [--concurrency C]\n" +
    "       AgentWorker.Bench egress [--runs N] [--mib N] [--connects N]\n" +
    "       AgentWorker.Bench gateway [--first-bytes N] [--requests N] [--concurrency N]\n" +
    "       AgentWorker.Bench summarize < results.jsonl\n" +
    "       AgentWorker.Bench report < results.jsonl > docs/benchmarks.md\n" +
    "       AgentWorker.Bench clone [--files N] [--runs N] [--dir DIR] [--remote packed|loose]\n" +
    "       AgentWorker.Bench startup [--binary PATH] [--runs N] [--serve-runs N] [--idle-seconds S] [--label L] [--env NAME=VALUE]...\n" +
    "--url defaults to REDIS_URL / POSTGRES_URL; every command prints JSON lines (report: Markdown).";

using var cancel = new CancellationTokenSource();
// Ctrl+C cancels the run instead of killing the process, so the temporary store is still removed.
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
try
{
    switch (args.FirstOrDefault())
    {
        case "sqlite" or "redis" or "postgres":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--jobs", "--workers", "--data-dir", "--url");
            var store = BenchStore.Create(args[0], options.Location(args[0]));
            var result = await QueueBench.RunAsync(store, options.Number("--jobs", 20_000, 10_000_000), options.Number("--workers", 50, 1_000), cancel.Token);
            Console.WriteLine(result.ToJson());
            return 0;
        }
        case "scale":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--backend", "--small", "--large", "--ops", "--rounds", "--data-dir", "--url");
            var backend = options.Choice("--backend", "sqlite", "redis", "postgres");
            var location = options.Location(backend);
            Console.WriteLine(await ScaleBench.RunAsync(
                () => BenchStore.Create(backend, location),
                small: options.Number("--small", 1_000, 10_000_000),
                large: options.Number("--large", 1_000_000, 10_000_000),
                ops: options.Number("--ops", 200, 100_000),
                rounds: options.Number("--rounds", 5, 1_000),
                cancel.Token));
            return 0;
        }
        case "sandbox":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--runs", "--concurrency");
            Console.WriteLine(await SandboxBench.RunAsync(options.Number("--runs", 300, 100_000), options.Number("--concurrency", 4, 1_000), cancel.Token));
            return 0;
        }
        case "egress":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--runs", "--mib", "--connects");
            Console.WriteLine(await EgressBench.RunAsync(options.Number("--runs", 200, 100_000), options.Number("--mib", 100, 100_000), options.Number("--connects", 300, 100_000), cancel.Token));
            return 0;
        }
        case "gateway":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--first-bytes", "--requests", "--concurrency");
            Console.WriteLine(await GatewayBench.RunAsync(options.Number("--first-bytes", 300, 100_000), options.Number("--requests", 1_000, 1_000_000), options.Number("--concurrency", 8, 1_000), cancel.Token));
            return 0;
        }
        case "clone":
        {
            var options = BenchOptions.Parse(args.AsSpan(1), "--files", "--runs", "--dir", "--remote");
            Console.WriteLine(await CloneBench.RunAsync(
                options.Number("--files", 3000, 1_000_000),
                options.Number("--runs", 9, 1_000),
                options.ExistingDirectory("--dir", Path.GetTempPath()),
                options.Text("--remote") is not null && options.Choice("--remote", "packed", "loose") == "loose",
                cancel.Token));
            return 0;
        }
        case "startup":
            Console.WriteLine(await StartupBench.RunAsync(StartupArguments.Parse(args.AsSpan(1)), cancel.Token));
            return 0;
        case "noop":
            // The start-up floor `startup` compares against: a .NET program that does nothing.
            return 0;
        case "summarize":
            BenchOptions.Parse(args.AsSpan(1));
            foreach (var group in Summary.Read(Console.In))
                Console.WriteLine(Summary.ToJson(group));
            return 0;
        case "report":
            BenchOptions.Parse(args.AsSpan(1));
            Console.Write(Report.Write(Summary.Read(Console.In)));
            return 0;
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        case null:
            return Fail(2, "missing command (sqlite, redis, postgres, scale, sandbox, egress, gateway, clone, startup, summarize or report); --help shows usage");
        default:
            return Fail(2, $"unknown command '{args[0]}' (expected sqlite, redis, postgres, scale, sandbox, egress, gateway, clone, startup, summarize or report)");
    }
}
catch (UsageException e)
{
    return Fail(2, e.Message);
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    return Fail(130, "interrupted");
}
catch (Exception e)
{
    return Fail(1, $"{args[0]} run failed: {e.GetType().Name}: {e.Message}{(e.InnerException is { } inner ? $" ({inner.Message})" : "")}");
}

static int Fail(int exitCode, string message)
{
    Console.Error.WriteLine($"AgentWorker.Bench: {message}");
    return exitCode;
}
