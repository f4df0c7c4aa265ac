using System.Text;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Kills every process a job started. Children run as leaders of their own session, so the
/// process group catches ordinary descendants; a descendant that called setsid() itself leaves the
/// group, so each run also carries a unique environment cookie and /proc is swept for it
/// (the approach of Jenkins' ProcessTreeKiller). The sandbox adds cgroups on top where available.
/// </summary>
internal static class ProcessTree
{
    public const string CookieVariable = "AGENT_WORKER_RUN_ID";

    /// <summary>Names the worker process (pid and start time) that started a child, so orphans of a crashed worker can be found.</summary>
    public const string OwnerVariable = "AGENT_WORKER_OWNER";

    private static readonly byte[] OwnerPrefix = Encoding.ASCII.GetBytes(OwnerVariable + "=");

    public static string NewCookie() => Guid.NewGuid().ToString("N");

    /// <summary>This process as an owner: <c>pid:start-time</c> (the start time tells a reused pid apart).</summary>
    public static string Owner { get; } = $"{Environment.ProcessId}:{StartTime(Environment.ProcessId)}";

    /// <summary>
    /// Kills every process tagged by a worker that is no longer alive (its agents and their descendants keep
    /// running after a kill -9 of the worker otherwise). Returns how many were killed.
    /// </summary>
    public static int KillOrphans()
    {
        var killed = 0;
        foreach (var (pid, environ) in Environments())
        {
            var at = environ.AsSpan().IndexOf(OwnerPrefix);
            if (at < 0)
                continue;
            var value = environ.AsSpan(at + OwnerPrefix.Length);
            var end = value.IndexOf((byte)0);
            var owner = Encoding.ASCII.GetString(end < 0 ? value : value[..end]);
            var parts = owner.Split(':');
            if (parts.Length == 2 && int.TryParse(parts[0], out var ownerPid) && StartTime(ownerPid) == parts[1])
                continue;
            if (ProcessSignals.Kill(pid))
                killed++;
        }
        return killed;
    }

    /// <summary>SIGKILLs the group led by <paramref name="groupLeader"/> and every process carrying <paramref name="cookie"/>, until none is left.</summary>
    public static void Kill(int groupLeader, string cookie)
    {
        ProcessSignals.Kill(-groupLeader);
        // Processes may fork while we kill; repeat until a sweep finds nothing alive.
        for (var round = 0; round < 20; round++)
        {
            var found = FindByCookie(cookie);
            if (found.Count == 0)
                return;
            foreach (var pid in found)
                ProcessSignals.Kill(pid);
        }
    }

    /// <summary>Live (non-zombie) processes whose environment holds <c>AGENT_WORKER_RUN_ID=cookie</c>.</summary>
    public static List<int> FindByCookie(string cookie)
    {
        var needle = Encoding.ASCII.GetBytes($"{CookieVariable}={cookie}\0");
        return [.. Environments().Where(p => p.Environ.AsSpan().IndexOf(needle) >= 0).Select(p => p.Pid)];
    }

    /// <summary>Environment blocks of the other live processes this user may read (a zombie's is empty).</summary>
    private static IEnumerable<(int Pid, byte[] Environ)> Environments()
    {
        var self = Environment.ProcessId;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == self)
                continue;
            byte[] environ;
            try
            {
                environ = File.ReadAllBytes(Path.Combine(dir, "environ"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Exited while we looked, or another user's process: not one of ours.
                continue;
            }
            if (environ.Length > 0)
                yield return (pid, environ);
        }
    }

    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null if no such process.</summary>
    private static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the parenthesised command name (which may contain spaces); start time is the 20th of them.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
