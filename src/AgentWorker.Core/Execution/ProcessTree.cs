using System.Runtime.InteropServices;
using System.Text;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Kills every process a job started. Children run as leaders of their own session, so the
/// process group catches ordinary descendants; a descendant that called setsid() itself leaves the
/// group, so each run also carries a unique environment cookie and /proc is swept for it
/// (the approach of Jenkins' ProcessTreeKiller). The sandbox adds cgroups on top where available.
/// </summary>
internal static partial class ProcessTree
{
    public const string CookieVariable = "AGENT_WORKER_RUN_ID";
    private const int SigKill = 9;

    public static string NewCookie() => Guid.NewGuid().ToString("N");

    /// <summary>SIGKILLs the group led by <paramref name="groupLeader"/> and every process carrying <paramref name="cookie"/>, until none is left.</summary>
    public static void Kill(int groupLeader, string cookie)
    {
        _ = Native.Kill(-groupLeader, SigKill);
        // Processes may fork while we kill; repeat until a sweep finds nothing alive.
        for (var round = 0; round < 20; round++)
        {
            var found = FindByCookie(cookie);
            if (found.Count == 0)
                return;
            foreach (var pid in found)
                _ = Native.Kill(pid, SigKill);
        }
    }

    /// <summary>Live (non-zombie) processes whose environment holds <c>AGENT_WORKER_RUN_ID=cookie</c>.</summary>
    public static List<int> FindByCookie(string cookie)
    {
        var needle = Encoding.ASCII.GetBytes($"{CookieVariable}={cookie}\0");
        var self = Environment.ProcessId;
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == self)
                continue;
            try
            {
                // A zombie has an empty environ, so only live processes match.
                var environ = File.ReadAllBytes(Path.Combine(dir, "environ"));
                if (environ.AsSpan().IndexOf(needle) >= 0)
                    found.Add(pid);
            }
            catch (IOException)
            {
                // The process exited while we looked.
            }
            catch (UnauthorizedAccessException)
            {
                // Another user's process: not one of ours.
            }
        }
        return found;
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static partial int Kill(int pid, int signal);
    }
}
