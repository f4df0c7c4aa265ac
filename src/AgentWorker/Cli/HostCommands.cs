using System.CommandLine;
using AgentWorker.Http;

namespace AgentWorker.Cli;

/// <summary>`serve` (HTTP + workers) and `run` (workers only).</summary>
internal static class HostCommands
{
    public static Command Serve(CommandAction action) =>
        new Command("serve", "Run the HTTP API, the dashboard at /, /health, /ready, /metrics and the worker slots.").WithAction(action, async (context, cancellationToken) =>
        {
            var config = context.Config;
            var agents = context.LoadAgents();
            await using var queue = await context.OpenQueueAsync(cancellationToken);
            await using var app = HttpHost.Build(config, queue, agents);
            var link = app.Services.GetService<Orchestration.Worker.OrchestratorLink>();
            try
            {
                await app.RunAsync();
            }
            catch (IOException e)
            {
                throw new CliException($"cannot listen on {config.ListenAddress}:{config.Port}: {e.Message}");
            }
            return LinkOutcome(link);
        });

    public static Command Run(CommandAction action)
    {
        var timeout = new Option<int?>("--timeout") { Description = "Seconds one dequeue blocks waiting for a job before looking again (default 30)." };
        var command = new Command("run", "Run worker slots only (no HTTP): lease jobs from the queue and run them until SIGTERM.") { timeout };
        return command.WithAction(action, async (context, cancellationToken) =>
        {
            var config = context.Config;
            if (context.Parse.GetValue(timeout) is { } seconds)
            {
                if (seconds is < 1 or > 3600)
                    throw new Configuration.ConfigException("invalid option --timeout: must be from 1 to 3600 seconds");
                config = config with { Pipeline = config.Pipeline with { LeaseWait = TimeSpan.FromSeconds(seconds) } };
            }
            return await RunWorkersAsync(context, config, cancellationToken);
        });
    }

    /// <summary>`tasks-poller`: the CUA seed's worker — `run` with the postgres-tasks intake.</summary>
    public static Command TasksPoller(CommandAction action) =>
        new Command("tasks-poller", "Run the tasks table in POSTGRES_URL for AGENT_ID with DEFAULT_AGENT (worker slots, no HTTP); same as `run --intake postgres-tasks`.")
            .WithAction(action, (context, cancellationToken) =>
            {
                context.Fix(Configuration.Settings.Intake, Configuration.IntegrationConfig.TasksIntake);
                return RunWorkersAsync(context, context.Config, cancellationToken);
            });

    /// <summary>`run`, and `connect` (which adds the orchestrator link): worker slots in a plain host until SIGTERM.</summary>
    public static async Task<int> RunWorkersAsync(CommandContext context, Configuration.WorkerConfig config, CancellationToken cancellationToken)
    {
        var agents = context.LoadAgents();
        await using var queue = await context.OpenQueueAsync(cancellationToken);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Args = [] });
        builder.Logging.AddWorkerLogging(config);
        builder.Services.AddAgentWorker(config, queue, agents, runWorkers: true);
        using var host = builder.Build();
        var link = host.Services.GetService<Orchestration.Worker.OrchestratorLink>();
        await host.RunAsync();
        return LinkOutcome(link);
    }

    /// <summary>A link that gave up on its orchestrator (--reconnect-max-attempts) makes the process fail.</summary>
    private static int LinkOutcome(Orchestration.Worker.OrchestratorLink? link) =>
        link?.GaveUp is { } why ? throw new CliException(why) : ExitCodes.Ok;
}
