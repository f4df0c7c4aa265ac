using AgentWorker.Core.Execution;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Workspace;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Tools;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Orchestration.Worker;

public static class LinkServices
{
    /// <summary>
    /// Adds the orchestrator link as a hosted service, with the tool set and agent tasks behind it. Needs what the
    /// pipeline registers: the sandbox, <see cref="ProcessRunner"/>, <see cref="WorkspaceManager"/>, the queue, the
    /// agent registry, <see cref="PipelineOptions"/> and a <see cref="TimeProvider"/>.
    /// </summary>
    public static IServiceCollection AddOrchestratorLink(this IServiceCollection services, OrchestratorLinkOptions link, ToolOptions tools)
    {
        services.AddSingleton(link);
        services.AddSingleton(tools);
        services.AddSingleton(new UrlPolicy(tools.WebAllow));
        services.AddSingleton(sp => new ToolExecutor(
            tools,
            sp.GetRequiredService<ISandbox>(),
            sp.GetRequiredService<ProcessRunner>(),
            sp.GetRequiredService<WorkspaceManager>(),
            sp.GetRequiredService<UrlPolicy>(),
            sp.GetRequiredService<PipelineOptions>().Limits,
            sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<AgentTasks>();
        services.AddSingleton<TaskDispatcher>();
        services.AddSingleton(sp => new OrchestratorLink(
            link,
            sp.GetRequiredService<ToolExecutor>(),
            sp.GetRequiredService<AgentTasks>(),
            sp.GetRequiredService<TaskDispatcher>(),
            sp.GetRequiredService<IHostApplicationLifetime>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<OrchestratorLink>>()));
        services.AddHostedService(sp => sp.GetRequiredService<OrchestratorLink>());
        return services;
    }
}
