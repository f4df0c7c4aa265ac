namespace AgentWorker.Core.Jobs;

public static class NetworkModes
{
    /// <summary>The name of a network mode as jobs, the registry and receipts spell it, e.g. <c>mcp_only</c>.</summary>
    public static string Name(this NetworkMode mode) => mode switch
    {
        NetworkMode.None => "none",
        NetworkMode.McpOnly => "mcp_only",
        NetworkMode.Allowlist => "allowlist",
        NetworkMode.Full => "full",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown network mode"),
    };
}
