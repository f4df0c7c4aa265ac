using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;

namespace AgentWorker.Cli;

/// <summary>
/// `demo`: builds a small real git repository with planted problems, queues every built-in agent against it
/// on the configured (by default embedded SQLite) queue, runs them with this process's worker slots and prints
/// the findings and health scores.
/// </summary>
internal static class DemoCommand
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    public static Command Create(CommandAction action) =>
        new Command("demo", "Run the built-in agents against a generated git repository with planted problems and print the results.").WithAction(action, async (context, cancellationToken) =>
        {
            var config = context.Config;
            var agents = context.LoadAgents();
            // The offline auditors: the llm agent needs an endpoint and a key.
            var demoAgents = agents.All.Where(a => a.BuiltIn && BuiltInAgents.All.Any(b => b.Id == a.Id)).OrderBy(a => a.Id, StringComparer.Ordinal).ToList();
            var repo = Path.Combine(Path.GetTempPath(), $"agent-worker-demo-{Guid.NewGuid():N}");
            try
            {
                await DemoRepository.CreateAsync(repo, cancellationToken);
                await using var queue = await context.OpenQueueAsync(cancellationToken);
                var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Args = [] });
                builder.Logging.AddWorkerLogging(config, LogLevel.Warning);
                builder.Services.AddAgentWorker(config, queue, agents, runWorkers: true);
                using var host = builder.Build();
                await host.StartAsync(cancellationToken);

                var run = Ulid.NewUlid().ToString().ToLowerInvariant();
                Console.WriteLine($"demo repository: {repo}");
                Console.WriteLine($"queue: {queue.Backend} at {config.DatabasePath}; {config.Pipeline.Slots} worker slot(s)");
                var ids = new List<string>();
                foreach (var agent in demoAgents)
                {
                    var job = new JobSpec { Id = $"demo-{run}-{agent.Id}", Agent = agent.Id, Repo = new RepoRef(repo) };
                    ids.Add((await queue.EnqueueAsync(job, cancellationToken)).Job.Id);
                    Console.WriteLine($"queued {job.Id}");
                }

                var jobs = await WaitForAllAsync(queue, ids, cancellationToken);
                await host.StopAsync(CancellationToken.None);
                Print(jobs);
                return jobs.All(j => j.State == JobState.Succeeded) ? ExitCodes.Ok : ExitCodes.Failure;
            }
            finally
            {
                if (Directory.Exists(repo))
                    Directory.Delete(repo, recursive: true);
            }
        });

    private static async Task<List<JobRecord>> WaitForAllAsync(IJobQueue queue, List<string> ids, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var jobs = new List<JobRecord>();
            foreach (var id in ids)
                jobs.Add(await queue.GetAsync(id, cancellationToken) ?? throw new CliException($"demo job {id} disappeared"));
            if (jobs.All(j => j.State.IsTerminal()))
                return jobs;
            if (clock.Elapsed > Deadline)
                throw new CliException($"demo jobs did not finish within {Deadline.TotalSeconds:0}s: {string.Join(", ", jobs.Select(j => $"{j.Id}={j.State.Name()}"))}");
            await Task.Delay(Poll, cancellationToken);
        }
    }

    private static void Print(List<JobRecord> jobs)
    {
        Console.WriteLine();
        Output.Table(["AGENT", "STATE", "HEALTH", "FINDINGS", "SECONDS", "SUMMARY"], jobs.Select(j => (IReadOnlyList<string>)
        [
            j.Spec.Agent ?? "",
            j.State.Name(),
            j.Result?.HealthScore.ToString(CultureInfo.InvariantCulture) ?? "-",
            j.Result?.Findings.Count.ToString(CultureInfo.InvariantCulture) ?? "-",
            j.Result?.DurationSeconds.ToString("0.00", CultureInfo.InvariantCulture) ?? "-",
            j.Result?.Summary ?? j.Error ?? "",
        ]));
        foreach (var job in jobs.Where(j => j.Result is { Findings.Count: > 0 }))
        {
            Console.WriteLine();
            Console.WriteLine($"{job.Spec.Agent} findings:");
            Output.Table(["SEVERITY", "RULE", "WHERE", "MESSAGE"], job.Result!.Findings
                .OrderBy(f => Array.IndexOf([.. AgentMessage.Severities], f.Severity))
                .Select(f => (IReadOnlyList<string>)[f.Severity, f.Rule, f.Line is { } line ? $"{f.File}:{line}" : f.File ?? "", f.Message]));
        }
    }
}
