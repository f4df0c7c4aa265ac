using System.CommandLine;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Queue;

namespace AgentWorker.Cli;

/// <summary>What a command needs from the parse: its configuration (resolved once), the registry and the queue.</summary>
internal sealed class CommandContext(ParseResult parse, IReadOnlyDictionary<Setting, Option<string?>> settingOptions)
{
    private WorkerConfig? _config;

    public ParseResult Parse => parse;

    public WorkerConfig Config => _config ??= WorkerConfig.Load(ConfigValues.Resolve(
        settingOptions.ToDictionary(o => o.Key, o => parse.GetValue(o.Value)),
        Environment.GetEnvironmentVariable));

    public AgentRegistry LoadAgents() => WorkerServices.LoadAgents(Config);

    public Task<IJobQueue> OpenQueueAsync(CancellationToken cancellationToken) => WorkerServices.OpenQueueAsync(Config, cancellationToken);
}
