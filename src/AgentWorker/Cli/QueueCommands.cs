using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Cli;

/// <summary>Commands that work on the queue directly: enqueue, stats, peek, recover, jobs list|show|logs|cancel|retry.</summary>
internal static class QueueCommands
{
    private static readonly TimeSpan FollowPoll = TimeSpan.FromMilliseconds(200);

    public static IEnumerable<Command> All(CommandAction action)
    {
        yield return Enqueue(action);
        yield return new Command("stats", "Print job counts by state as JSON.").WithAction(action, async (context, cancellationToken) =>
        {
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            var stats = await queue.GetStatsAsync(cancellationToken);
            Output.Document(new JsonObject
            {
                ["backend"] = queue.Backend,
                ["depth"] = stats.Depth,
                ["queued"] = stats.Queued,
                ["running"] = stats.Running,
                ["retrying"] = stats.Retrying,
                ["succeeded"] = stats.Succeeded,
                ["failed"] = stats.Failed,
                ["cancelled"] = stats.Cancelled,
                ["timedOut"] = stats.TimedOut,
                ["dead"] = stats.Dead,
            });
            return ExitCodes.Ok;
        });

        var count = new Option<int>("--count") { Description = "How many jobs to show.", DefaultValueFactory = _ => 1 };
        yield return new Command("peek", "Show the next job(s) that would run, without taking them.") { count }.WithAction(action, async (context, cancellationToken) =>
        {
            var n = context.Parse.GetValue(count);
            if (n is < 1 or > 1000)
                throw new Configuration.ConfigException("invalid option --count: must be from 1 to 1000");
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            Output.Json((await queue.PeekAsync(n, cancellationToken)).Select(JobView.From));
            return ExitCodes.Ok;
        });

        yield return new Command("recover", "Give jobs whose worker died (lease expired) back to the queue now.").WithAction(action, async (context, cancellationToken) =>
        {
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            Console.WriteLine($"recovered {await queue.RecoverAsync(cancellationToken)} job(s)");
            return ExitCodes.Ok;
        });

        yield return Jobs(action);
    }

    private static Command Enqueue(CommandAction action)
    {
        // Flags map onto the reliable-queue JSON shape, so the CLI and HTTP share one validation path.
        var fields = new (string Flag, string Field, string Help)[]
        {
            ("--job-id", "id", "Job id (idempotency key); generated when absent."),
            ("--repo-url", "repo_url", "Repository URL or absolute path (required)."),
            ("--branch", "branch", "Branch to check out."),
            ("--commit", "commit", "Commit to check out."),
            ("--prompt", "prompt", "Task text for the agent."),
            ("--mcp-connection-url", "mcp_connection_url", "MCP endpoint handed to the agent as MCP_CONNECTION_URL."),
            ("--agent", "agent", "Agent id from the registry (default: DEFAULT_AGENT)."),
            ("--mode", "mode", "dry_run (default) or apply (commit and push to --branch)."),
            ("--commit-message", "commit_message", "Apply mode: the commit message."),
            ("--network", "network", "none (default unless the agent names one), mcp_only, allowlist (the agent's allowHosts, or --allow-host) or full (any public host)."),
        };
        var options = fields.Select(f => (f.Field, f.Flag, Option: new Option<string?>(f.Flag) { Description = f.Help })).ToList();
        var numbers = new (string Flag, string Field, string Help)[]
        {
            ("--timeout-seconds", "timeoutSeconds", "Agent timeout for this job."),
            ("--max-attempts", "maxAttempts", "Attempts before the job is dead (default 3)."),
            ("--priority", "priority", "Higher runs first (default 0)."),
        };
        var numberOptions = numbers.Select(f => (f.Field, f.Flag, Option: new Option<int?>(f.Flag) { Description = f.Help })).ToList();
        var createBranch = new Option<bool>("--create-branch") { Description = "Apply mode: create --branch from the default branch (or --commit) when it does not exist." };
        var allowHosts = new Option<string[]>("--allow-host")
        {
            Description = "Network allowlist: a host this job may reach (host, *.domain, optional :port; default port 443); repeatable. Must be in the agent's own list unless EGRESS_JOBS_MAY_ADD_HOSTS=true.",
        };
        var maxRequests = new Option<int?>("--max-requests") { Description = "Budget: requests the agent may send through the model gateway (narrows the agent's budget)." };
        var maxTokens = new Option<long?>("--max-tokens") { Description = "Budget: input plus output tokens the agent may use through the model gateway." };
        var maxCost = new Option<decimal?>("--max-cost-usd") { Description = "Budget: estimated US dollars (MODEL_PRICES) the agent may spend through the model gateway." };
        var command = new Command("enqueue", "Queue a job.") { createBranch, allowHosts, maxRequests, maxTokens, maxCost };
        foreach (var (_, _, option) in options)
            command.Options.Add(option);
        foreach (var (_, _, option) in numberOptions)
            command.Options.Add(option);

        return command.WithAction(action, async (context, cancellationToken) =>
        {
            var body = new JsonObject();
            foreach (var (field, _, option) in options)
            {
                if (context.Parse.GetValue(option) is { } value)
                    body[field] = value;
            }
            foreach (var (field, _, option) in numberOptions)
            {
                if (context.Parse.GetValue(option) is { } value)
                    body[field] = value;
            }
            if (context.Parse.GetValue(createBranch))
                body["create_branch"] = true;
            if (context.Parse.GetValue(allowHosts) is { Length: > 0 } hosts)
                body["allowHosts"] = new JsonArray([.. hosts.Select(h => (JsonNode)h)]);
            var limits = new JsonObject
            {
                ["maxRequests"] = context.Parse.GetValue(maxRequests),
                ["maxTokens"] = context.Parse.GetValue(maxTokens),
                ["maxCostUsd"] = context.Parse.GetValue(maxCost),
            };
            foreach (var unset in limits.Where(l => l.Value is null).Select(l => l.Key).ToList())
                limits.Remove(unset);
            if (limits.Count > 0)
                body["budget"] = limits;
            var agents = context.LoadAgents();
            var parsed = JobRequestParser.Parse(body, agents, context.Config.Pipeline.DefaultAgent, () => Ulid.NewUlid().ToString());
            if (parsed.Job is not { } job)
            {
                // The parser names a missing URL in the dialect it guessed; on the command line it is always --repo-url.
                var flagOf = options.Select(o => (o.Field, o.Flag)).Concat(numberOptions.Select(o => (o.Field, o.Flag)))
                    .Append((Field: "repoUrl", Flag: "--repo-url")).Append((Field: "create_branch", Flag: "--create-branch")).Append((Field: "allowHosts", Flag: "--allow-host"))
                    .Append((Field: "budget.maxRequests", Flag: "--max-requests")).Append((Field: "budget.maxTokens", Flag: "--max-tokens"))
                    .Append((Field: "budget.maxCostUsd", Flag: "--max-cost-usd")).ToDictionary(o => o.Field, o => o.Flag);
                throw new Configuration.ConfigException("invalid option " + string.Join("; ", parsed.Errors.Select(e =>
                    $"{flagOf.GetValueOrDefault(e.Key, e.Key)}: {string.Join(", ", e.Value)}")));
            }
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            return await context.WithNotifierAsync(queue, async notifier =>
            {
                var result = await queue.EnqueueAsync(job, cancellationToken);
                if (result.Created)
                    notifier.Publish(result.Job);
                Console.WriteLine(result.Created ? $"queued {result.Job.Id}" : $"exists {result.Job.Id} ({result.Job.State.Name()})");
                return ExitCodes.Ok;
            });
        });
    }

    private static Command Jobs(CommandAction action)
    {
        var jobs = new Command("jobs", "List, inspect, follow, cancel and retry jobs.");

        var state = new Option<string?>("--state") { Description = "Only jobs in this state." };
        var agent = new Option<string?>("--agent") { Description = "Only jobs of this agent." };
        var repo = new Option<string?>("--repo") { Description = "Only jobs whose repository URL contains this text." };
        var limit = new Option<int>("--limit") { Description = "Page size.", DefaultValueFactory = _ => 20 };
        var offset = new Option<int>("--offset") { Description = "Jobs to skip.", DefaultValueFactory = _ => 0 };
        // Agents and raw producers control what some fields hold; their control characters are shown escaped unless asked for.
        var raw = new Option<bool>("--raw") { Description = "Print agent-controlled text as it is, control characters (escape sequences, CR, BEL) included; by default they are shown escaped (\\x1b, \\r)." };
        string Shown(ParseResult parse, string text) => parse.GetValue(raw) ? text : TerminalText.Escape(text);
        jobs.Subcommands.Add(new Command("list", "Jobs, newest first.") { state, agent, repo, limit, offset, raw }.WithAction(action, async (context, cancellationToken) =>
        {
            JobState? filter = null;
            if (context.Parse.GetValue(state) is { } name)
            {
                if (!JobStates.TryParse(name, out var parsed))
                    throw new Configuration.ConfigException($"invalid option --state: unknown state '{name}'");
                filter = parsed;
            }
            var (size, skip) = (context.Parse.GetValue(limit), context.Parse.GetValue(offset));
            if (size is < 1 or > 500 || skip < 0)
                throw new Configuration.ConfigException("invalid option --limit/--offset: limit 1-500, offset not negative");
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            var page = await queue.ListAsync(new JobQuery(filter, context.Parse.GetValue(agent), size, skip, context.Parse.GetValue(repo)), cancellationToken);
            Output.Table(["ID", "STATE", "AGENT", "ATTEMPTS", "SCORE", "FINDINGS", "CREATED"], page.Items.Select(j => (IReadOnlyList<string>)
            [
                j.Id, j.State.Name(), Shown(context.Parse, j.Spec.Agent ?? "(default)"), $"{j.Attempts}/{j.Spec.MaxAttempts}",
                j.Result?.HealthScore.ToString(CultureInfo.InvariantCulture) ?? "-",
                j.Result?.Findings.Count.ToString(CultureInfo.InvariantCulture) ?? "-",
                j.CreatedAt.ToString("u", CultureInfo.InvariantCulture),
            ]));
            Console.WriteLine($"{page.Items.Count} of {page.Total}");
            return ExitCodes.Ok;
        }));

        jobs.Subcommands.Add(WithId("show", "Print a job, its attempts and result as JSON (control characters escaped by JSON).", action, async (queue, id, _, cancellationToken) =>
        {
            Output.Json(JobView.From(await queue.GetAsync(id, cancellationToken) ?? throw NotFound(id)));
            return ExitCodes.Ok;
        }));

        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until the job ends." };
        jobs.Subcommands.Add(WithId("logs", "Print a job's events and log lines.", action, async (queue, id, parse, cancellationToken) =>
        {
            _ = await queue.GetAsync(id, cancellationToken) ?? throw NotFound(id);
            long cursor = 0;
            while (true)
            {
                var job = await queue.GetAsync(id, cancellationToken);
                var events = await queue.ReadEventsAsync(id, cursor, 1000, cancellationToken);
                foreach (var e in events)
                {
                    Console.WriteLine($"{e.At:HH:mm:ss.fff} #{e.Attempt} {e.Kind.ToString().ToLowerInvariant(),-8} {(e.Stream is null ? "" : e.Stream + ": ")}{Shown(parse, e.Message)}");
                    cursor = e.Seq;
                }
                if (!parse.GetValue(follow) || (events.Count == 0 && (job is null || job.State.IsTerminal())))
                    return ExitCodes.Ok;
                if (events.Count == 0)
                    await Task.Delay(FollowPoll, cancellationToken);
            }
        }, follow, raw));

        jobs.Subcommands.Add(WithId("cancel", "Cancel a queued job, or stop a running one.", action, (queue, id, _, context, cancellationToken) =>
            context.WithNotifierAsync(queue, async notifier =>
            {
                switch (await queue.CancelAsync(id, "cancelled via CLI", cancellationToken))
                {
                    case CancelOutcome.NotFound:
                        throw NotFound(id);
                    case CancelOutcome.AlreadyFinished:
                        throw new CliException($"job '{id}' has already ended");
                    case CancelOutcome.Cancelled:
                        await notifier.PublishCurrentAsync(id, cancellationToken);
                        Console.WriteLine($"cancelled {id}");
                        break;
                    default:
                        Console.WriteLine($"cancel requested for running job {id}");
                        break;
                }
                return ExitCodes.Ok;
            })));

        jobs.Subcommands.Add(WithId("retry", "Queue a failed, dead, cancelled or timed-out job again.", action, (queue, id, _, context, cancellationToken) =>
            context.WithNotifierAsync(queue, async notifier =>
            {
                switch (await queue.RetryAsync(id, cancellationToken))
                {
                    case RetryOutcome.NotFound:
                        throw NotFound(id);
                    case RetryOutcome.AlreadySucceeded:
                        throw new CliException($"job '{id}' succeeded; a succeeded job is not run again (enqueue a new id)");
                    case RetryOutcome.NotFinished:
                        throw new CliException($"job '{id}' is still queued or running");
                    default:
                        await notifier.PublishCurrentAsync(id, cancellationToken);
                        Console.WriteLine($"queued {id} again");
                        return ExitCodes.Ok;
                }
            })));

        var verify = new Option<bool>("--verify") { Description = "Recompute the SHA-256 of every artifact in this worker's data directory and compare (exit 1 on a mismatch)." };
        jobs.Subcommands.Add(WithId("receipt", "Print a job's run receipt as JSON (repository, commits, agent, prompt hash, sandbox, usage, hashes of the diff and artifacts).", action, async (queue, id, parse, context, cancellationToken) =>
        {
            var job = await queue.GetAsync(id, cancellationToken) ?? throw NotFound(id);
            var receipt = job.Result?.Receipt ?? throw new CliException($"job '{id}' has no receipt: no run of its agent has finished (state {job.State.Name()})");
            if (!parse.GetValue(verify))
            {
                Output.Json(receipt);
                return ExitCodes.Ok;
            }
            var checks = await ReceiptCheck.VerifyAsync(receipt, new ArtifactStore(context.Config.ArtifactsDir), cancellationToken);
            foreach (var check in checks)
                Console.WriteLine($"{(check.Ok ? "ok" : check.Actual is null ? "MISSING" : "MISMATCH"),-8} {check.Expected}  {check.Name}");
            return checks.All(c => c.Ok) ? ExitCodes.Ok : ExitCodes.Failure;
        }, verify));
        return jobs;
    }

    private static Command WithId(string name, string description, CommandAction action, Func<IJobQueue, string, ParseResult, CancellationToken, Task<int>> body, params Option[] extra) =>
        WithId(name, description, action, (queue, id, parse, _, cancellationToken) => body(queue, id, parse, cancellationToken), extra);

    private static Command WithId(string name, string description, CommandAction action, Func<IJobQueue, string, ParseResult, CommandContext, CancellationToken, Task<int>> body, params Option[] extra)
    {
        var id = new Argument<string>("id") { Description = "Job id." };
        var command = new Command(name, description) { id };
        foreach (var option in extra)
            command.Options.Add(option);
        return command.WithAction(action, async (context, cancellationToken) =>
        {
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            return await body(queue, context.Parse.GetValue(id)!, context.Parse, context, cancellationToken);
        });
    }

    private static CliException NotFound(string id) => new($"no job with id '{id}'");
}
