namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>The agents shipped in the binary, looked up by the id jobs name them with.</summary>
internal static class BuiltInAgents
{
    public static IReadOnlyList<IBuiltInAgent> All { get; } = [new SsotAuditor(), new SecretScanner(), new DependencyAuditor()];

    public static IBuiltInAgent? Find(string id) => All.FirstOrDefault(agent => agent.Id == id);
}
