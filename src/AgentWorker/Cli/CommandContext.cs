using System.CommandLine;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sinks;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Cli;

/// <summary>What a command needs from the parse: its configuration (resolved once), the registry and the queue.</summary>
internal sealed class CommandContext(ParseResult parse, IReadOnlyDictionary<Setting, Option<string?>> settingOptions)
{
    private readonly Dictionary<Setting, string> _fixed = [];
    private WorkerConfig? _config;

    public ParseResult Parse => parse;

    public WorkerConfig Config => _config ??= WorkerConfig.Load(ConfigValues.Resolve(
        settingOptions.ToDictionary(o => o.Key, o => _fixed.TryGetValue(o.Key, out var value) ? value : parse.GetValue(o.Value)),
        Environment.GetEnvironmentVariable));

    /// <summary>A setting the command itself decides (e.g. `tasks-poller` is the postgres-tasks intake), as if given as a flag.</summary>
    public void Fix(Setting setting, string value)
    {
        if (_config is not null)
            throw new InvalidOperationException("configuration already loaded");
        _fixed[setting] = value;
    }

    public AgentRegistry LoadAgents() => WorkerServices.LoadAgents(Config);

    public Task<IJobQueue> OpenQueueAsync(CancellationToken cancellationToken) => WorkerServices.OpenQueueAsync(Config, cancellationToken);

    /// <summary>
    /// Runs <paramref name="body"/> with the configured sinks (a job the command queued or cancelled is delivered like
    /// one the API did), then waits for the deliveries before the process ends.
    /// </summary>
    public async Task<int> WithNotifierAsync(IJobQueue queue, Func<JobNotifier, Task<int>> body)
    {
        using var sinks = new SinkSet(Config, NullLoggerFactory.Instance);
        using var notifier = WorkerServices.CreateNotifier(Config, queue, sinks, NullLoggerFactory.Instance);
        var exitCode = await body(notifier);
        if (await notifier.DrainAsync(Config.Sinks.DrainTimeout) is > 0 and var abandoned)
            await Console.Error.WriteLineAsync($"agent-worker: {abandoned} sink delivery(ies) still failing after {Config.Sinks.DrainTimeout.TotalSeconds:0}s were abandoned (GET /v1/jobs/ID/deliveries shows the log)");
        return exitCode;
    }
}
