namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>Placeholder catalog until the built-in agents land.</summary>
internal static class BuiltInAgents
{
    public static IReadOnlyList<IBuiltInAgent> All { get; } = [];

    public static IBuiltInAgent? Find(string id) => All.FirstOrDefault(a => a.Id == id);
}
