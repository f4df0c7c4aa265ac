using System.Runtime.CompilerServices;
using AgentWorker.Artifacts.S3;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;
using AgentWorker.Core.Allocation;
using AgentWorker.Core.Artifacts;
using AgentWorker.TasksPoller;

namespace AgentWorker;

/// <summary>Wires the seed integrations the configuration asks for: S3 artifacts, the instance allocator, the tasks-table poller.</summary>
internal static class Integrations
{
    public static IServiceCollection AddIntegrations(this IServiceCollection services, WorkerConfig config, AgentRegistry agents, bool runWorkers)
    {
        // Each integration is wired in a method of its own, called only when configured: a method's precompiled code
        // loads the types it names before it runs, and a worker without them should not map System.Net.Http,
        // Npgsql's wrapper or the poller (idle `serve` RSS, bench/README.md "Startup").
        var integrations = config.Integrations;
        if (integrations.S3 is { } s3)
            AddS3(services, s3);
        services.AddSingleton(new ArtifactOptions { AgentId = integrations.AgentId, MaxTotalBytes = config.Pipeline.MaxArtifactBytes });
        services.AddSingleton(provider => new ArtifactCollector(
            provider.GetService<IObjectStore>(), provider.GetRequiredService<ArtifactOptions>(),
            provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILogger<ArtifactCollector>>()));
        if (integrations.AllocatorUrl is { } allocatorUrl)
            AddAllocator(services, config, allocatorUrl, runWorkers);
        if (integrations.PollsTasks && runWorkers)
            AddTasksPoller(services, config, agents);
        return services;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddS3(IServiceCollection services, S3Options s3) => services.AddSingleton<IObjectStore>(new S3ArtifactStore(s3));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddAllocator(IServiceCollection services, WorkerConfig config, Uri allocatorUrl, bool runWorkers)
    {
        services.AddSingleton<IInstanceAllocator>(new HttpInstanceAllocator(new HttpClient { Timeout = TimeSpan.FromSeconds(10) }, allocatorUrl));
        services.AddSingleton(provider => new InstanceManager(
            provider.GetRequiredService<IInstanceAllocator>(), Path.Combine(config.DataDir, "instances"),
            provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILogger<InstanceManager>>()));
        if (runWorkers)
            services.AddHostedService<InstanceSweeper>();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddTasksPoller(IServiceCollection services, WorkerConfig config, AgentRegistry agents)
    {
        var integrations = config.Integrations;
        var agent = config.Pipeline.DefaultAgent
            ?? throw config.Values.Invalid(Settings.DefaultAgent, "postgres-tasks needs the agent that runs each task (--default-agent / DEFAULT_AGENT)");
        if (agents.Find(agent) is null)
            throw config.Values.Invalid(Settings.DefaultAgent, $"agent '{agent}' is not in the registry");
        try
        {
            Storage.Postgres.PostgresConnectionString.Parse(config.PostgresUrl!);
        }
        catch (ArgumentException e)
        {
            throw config.Values.Invalid(Settings.PostgresUrl, e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
        }
        services.AddSingleton(new TasksPollerOptions
        {
            ConnectionString = config.PostgresUrl!,
            AgentId = integrations.AgentId!,
            Agent = agent,
            PollInterval = integrations.PollInterval,
            TaskTimeout = integrations.TaskTimeout,
        });
        services.AddHostedService<TasksPoller.TasksPoller>();
    }

    /// <summary>The llm agent's endpoint (its gateway's upstream; the key stays with the gateway) and default model.</summary>
    public static IReadOnlyDictionary<string, string> LlmVariables(WorkerConfig config) => new Dictionary<string, string>
    {
        [LlmReviewer.BaseUrlVariable] = config.Integrations.Llm.BaseUrl.AbsoluteUri,
        [LlmReviewer.ModelVariable] = config.Integrations.Llm.Model,
    };
}
