using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Policy;

/// <summary>
/// A task refused before anything ran: a policy denial, a disabled tool or a bad argument. The message is the
/// clear error the orchestrator gets back (state DENIED with <see cref="Code"/>).
/// </summary>
public sealed class TaskRefusedException(ErrorCode code, string message) : Exception(message)
{
    public ErrorCode Code { get; } = code;

    public static TaskRefusedException Policy(string message) => new(ErrorCode.PolicyDenied, message);

    public static TaskRefusedException Argument(string message) => new(ErrorCode.InvalidArgument, message);
}
