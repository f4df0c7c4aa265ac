using System.Diagnostics;
using System.Text;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Runs a child process in its own session with a cleared environment, streams its output line by line
/// with a byte cap (excess output is drained and dropped, so neither the child blocks nor the worker's
/// memory grows), and kills the whole process tree on timeout, cancellation, or when the main process exits.
/// A sandboxed run whose control group holds all its processes is killed through that group instead, and starts
/// without setsid when the worker has no terminal (one exec less per job).
/// </summary>
public sealed class ProcessRunner(TimeProvider timeProvider)
{
    private const string SetsidPath = "/usr/bin/setsid";
    private const int MaxLineBytes = 64 * 1024;
    private const int MinLineCost = 64;
    private static readonly TimeSpan DrainGrace = TimeSpan.FromSeconds(2);

    /// <summary>Whether the worker has a terminal that could send Ctrl-C to its foreground process group (a service has none).</summary>
    private static readonly Lazy<bool> HasControllingTerminal = new(() =>
    {
        try
        {
            using var tty = File.OpenHandle("/dev/tty", FileMode.Open, FileAccess.Read);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    });

    /// <summary>Runs <paramref name="spec"/> (paths and environment as the agent sees them) inside <paramref name="sandbox"/>, or directly when null.</summary>
    public async Task<ProcessOutcome> RunAsync(
        ProcessSpec spec,
        Func<OutputLine, ValueTask> onLine,
        CancellationToken cancellationToken,
        Sandbox.SandboxRun? sandbox = null)
    {
        var program = spec.Argv[0];
        var path = spec.Environment.GetValueOrDefault("PATH");
        var executable = ResolveExecutable(program, spec.WorkingDirectory, path, sandbox)
            ?? throw new ProcessStartException($"command '{program}' not found (PATH of the agent: {path ?? "unset"})");
        var launch = sandbox?.Wrap(spec) ?? spec with { Argv = [executable, .. spec.Argv.Skip(1)] };
        var cookie = ProcessTree.NewCookie();
        // A run whose control group holds every process it starts needs neither the group kill nor the cookie sweep, and
        // its own session only to keep a terminal's Ctrl-C from the launcher (bubblewrap puts the agent in a new session).
        var contained = sandbox?.HoldsAllProcesses == true;
        var ownSession = !contained || HasControllingTerminal.Value;
        var startInfo = new ProcessStartInfo(ownSession ? SetsidPath : launch.Argv[0])
        {
            WorkingDirectory = launch.WorkingDirectory,
            UserName = launch.UserName,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (ownSession)
            startInfo.ArgumentList.Add("--");
        foreach (var arg in ownSession ? launch.Argv : launch.Argv.Skip(1))
            startInfo.ArgumentList.Add(arg);
        startInfo.Environment.Clear();
        foreach (var (name, value) in launch.Environment)
            startInfo.Environment[name] = value;
        startInfo.Environment[ProcessTree.CookieVariable] = cookie;
        startInfo.Environment[ProcessTree.OwnerVariable] = ProcessTree.Owner;

        var started = timeProvider.GetTimestamp();
        using var process = new Process { StartInfo = startInfo };
        try
        {
            await ProcessSpawner.StartAsync(process, sandbox?.NetworkNamespace).ConfigureAwait(false);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ProcessStartException($"cannot start {startInfo.FileName}: {e.Message}", e);
        }
        var input = WriteInputAsync(process.StandardInput.BaseStream, spec.StandardInput);

        var budget = new OutputBudget(spec.MaxOutputBytes);
        var stdout = PumpAsync(process.StandardOutput.BaseStream, "stdout", budget, onLine);
        var stderr = PumpAsync(process.StandardError.BaseStream, "stderr", budget, onLine);

        using var timeout = new CancellationTokenSource(spec.Timeout, timeProvider);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        var end = ProcessEnd.Exited;
        try
        {
            await process.WaitForExitAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            end = cancellationToken.IsCancellationRequested ? ProcessEnd.Cancelled : ProcessEnd.TimedOut;
        }
        finally
        {
            // Also after a normal exit: whatever the agent left running in the background dies with it.
            if (contained)
                process.Kill();
            else
                ProcessTree.Kill(process.Id, cookie);
            sandbox?.KillAll();
        }
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);

        // The pipes close once every holder is dead (a blocked write to stdin then ends with EPIPE); bound the wait in case something outside the tree holds them.
        var pumps = Task.WhenAll(stdout, stderr, input);
        await Task.WhenAny(pumps, Task.Delay(DrainGrace, timeProvider, CancellationToken.None)).ConfigureAwait(false);
        if (pumps.IsFaulted)
            await pumps.ConfigureAwait(false);

        return new ProcessOutcome(
            end,
            end == ProcessEnd.Exited ? process.ExitCode : null,
            budget.Used,
            budget.Truncated,
            timeProvider.GetElapsedTime(started));
    }

    /// <summary>
    /// Writes <paramref name="text"/> to the child's standard input and closes it, in the background: a prompt larger
    /// than the pipe's buffer waits for the child to read it. A child that exits or closes its input without reading
    /// all of it is no error of the worker's.
    /// </summary>
    private static async Task WriteInputAsync(Stream stdin, string? text)
    {
        try
        {
            if (text is not null)
                await stdin.WriteAsync(Encoding.UTF8.GetBytes(text)).ConfigureAwait(false);
        }
        catch (IOException)
        {
        }
        finally
        {
            try
            {
                await stdin.DisposeAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// Finds the program the way execvp would with the child's own PATH (looking through the sandbox's view at the
    /// host file), so a missing agent fails before anything starts. Returns the path as the child sees it.
    /// </summary>
    private static string? ResolveExecutable(string program, string workingDirectory, string? path, Sandbox.SandboxRun? sandbox)
    {
        bool Exists(string inside) => File.Exists(sandbox?.ToHostPath(inside) ?? inside);
        if (program.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(program, workingDirectory);
            return Exists(full) ? full : null;
        }
        return (path ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(Exists);
    }

    private static async Task PumpAsync(Stream stream, string name, OutputBudget budget, Func<OutputLine, ValueTask> onLine)
    {
        var buffer = new byte[16 * 1024];
        var line = new MemoryStream();
        var lineTooLong = false;
        int read;
        while ((read = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            var span = buffer.AsMemory(0, read);
            while (!span.IsEmpty)
            {
                var newline = span.Span.IndexOf((byte)'\n');
                var chunk = newline < 0 ? span : span[..newline];
                if (line.Length + chunk.Length <= MaxLineBytes)
                    line.Write(chunk.Span);
                else
                    lineTooLong = true;
                if (newline < 0)
                    break;
                await EmitAsync(line, lineTooLong, name, budget, onLine).ConfigureAwait(false);
                lineTooLong = false;
                span = span[(newline + 1)..];
            }
        }
        if (line.Length > 0)
            await EmitAsync(line, lineTooLong, name, budget, onLine).ConfigureAwait(false);
    }

    private static async ValueTask EmitAsync(MemoryStream line, bool truncated, string name, OutputBudget budget, Func<OutputLine, ValueTask> onLine)
    {
        var length = line.Length;
        var text = Encoding.UTF8.GetString(line.GetBuffer(), 0, (int)length).TrimEnd('\r');
        line.SetLength(0);
        // Each line costs at least a stored event's overhead, so floods of empty lines hit the cap too.
        if (!budget.TryTake(Math.Max(length + 1, MinLineCost), out var firstRefusal))
        {
            if (firstRefusal)
                await onLine(new OutputLine(name, $"[agent-worker: output cap of {budget.Limit} bytes reached; further output dropped]")).ConfigureAwait(false);
            return;
        }
        await onLine(new OutputLine(name, truncated ? text + " [line truncated]" : text)).ConfigureAwait(false);
    }

    private sealed class OutputBudget(long limit)
    {
        private long _used;
        private int _refused;

        public long Limit => limit;
        public long Used => Interlocked.Read(ref _used);
        public bool Truncated => Volatile.Read(ref _refused) != 0;

        public bool TryTake(long bytes, out bool firstRefusal)
        {
            firstRefusal = false;
            if (Interlocked.Add(ref _used, bytes) <= limit)
                return true;
            firstRefusal = Interlocked.Exchange(ref _refused, 1) == 0;
            return false;
        }
    }
}

/// <summary>The child process could not be started (missing binary, bad working directory).</summary>
public sealed class ProcessStartException : Exception
{
    public ProcessStartException(string message) : base(message) { }

    public ProcessStartException(string message, Exception inner) : base(message, inner) { }
}
