namespace AgentWorker.Core.Execution;

/// <summary>
/// A child process to run: argv (no shell), working directory, the complete environment, and limits;
/// <see cref="UserName"/> is the host user it starts as (a root worker's sandbox launcher), null for the worker's own.
/// </summary>
public sealed record ProcessSpec(
    IReadOnlyList<string> Argv,
    string WorkingDirectory,
    IReadOnlyDictionary<string, string> Environment,
    TimeSpan Timeout,
    long MaxOutputBytes,
    string? UserName = null)
{
    /// <summary>Text written to the process's standard input (UTF-8), which is then closed; null: closed at once.</summary>
    public string? StandardInput { get; init; }
}

public enum ProcessEnd { Exited, TimedOut, Cancelled }

/// <summary>How a child process ended. <see cref="ExitCode"/> is null when it was killed.</summary>
public sealed record ProcessOutcome(ProcessEnd End, int? ExitCode, long OutputBytes, bool OutputTruncated, TimeSpan Duration);

/// <summary>A line of child output, with the stream it came from ("stdout" or "stderr").</summary>
public readonly record struct OutputLine(string Stream, string Text);
