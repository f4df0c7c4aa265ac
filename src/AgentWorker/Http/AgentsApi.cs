using AgentWorker.Core.Agents;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Http;

/// <summary>An agent as clients see it: what it is called and how it runs by default, not its command line or environment.</summary>
internal sealed record AgentView(string Id, string? Description, bool BuiltIn, NetworkMode? Network, IReadOnlyList<string>? AllowHosts, int? TimeoutSeconds);

internal sealed record AgentList(IReadOnlyList<AgentView> Items);

/// <summary><c>GET /v1/agents</c>: the registry, for clients that let a person pick an agent (the dashboard's job form).</summary>
internal static class AgentsApi
{
    public static void MapAgents(this IEndpointRouteBuilder app, string? apiKey)
    {
        app.MapGroup("").RequireBearer(apiKey).WithTags("agents")
            .MapGet("/v1/agents", (AgentRegistry agents) => TypedResults.Ok(new AgentList(
                [.. agents.All.OrderBy(a => a.Id, StringComparer.Ordinal).Select(a => new AgentView(a.Id, a.Description, a.BuiltIn, a.Network, a.AllowHosts.Count > 0 ? [.. a.AllowHosts.Select(h => h.ToString())] : null, a.TimeoutSeconds))])))
            .WithSummary("List the agents jobs can name")
            .WithDescription("Built-in agents and the entries of the registry file (AGENTS_FILE), sorted by id.");
    }
}
