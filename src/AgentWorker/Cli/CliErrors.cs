namespace AgentWorker.Cli;

/// <summary>A user-facing failure of a command (job not found, port in use): one line on stderr, exit 1.</summary>
internal sealed class CliException(string message) : Exception(message);

internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}
