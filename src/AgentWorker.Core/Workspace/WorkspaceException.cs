namespace AgentWorker.Core.Workspace;

/// <summary>The workspace could not be prepared. <see cref="Permanent"/> failures are not retried.</summary>
public sealed class WorkspaceException(string message, bool permanent) : Exception(message)
{
    public bool Permanent { get; } = permanent;
}
