namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>The agents shipped in the binary, looked up by the id jobs name them with.</summary>
internal static class BuiltInAgents
{
    /// <summary>The offline audit agents: no network, no key (the demo runs these).</summary>
    public static IReadOnlyList<IBuiltInAgent> All { get; } = [new SsotAuditor(), new SecretScanner(), new DependencyAuditor()];

    /// <summary>The model-backed reviewer; it needs its endpoint, so its registry entry defaults to network full.</summary>
    public static IBuiltInAgent Llm { get; } = new LlmReviewer();

    public static IBuiltInAgent? Find(string id) => All.Append(Llm).FirstOrDefault(agent => agent.Id == id);
}
