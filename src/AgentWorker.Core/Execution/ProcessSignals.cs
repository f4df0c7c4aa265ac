using System.Runtime.InteropServices;

namespace AgentWorker.Core.Execution;

/// <summary>Sends signals by pid (negative pid: a process group).</summary>
internal static partial class ProcessSignals
{
    private const int SigKill = 9;

    /// <summary>SIGKILL; true if the signal was delivered.</summary>
    public static bool Kill(int pid) => Native.Kill(pid, SigKill) == 0;

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static partial int Kill(int pid, int signal);
    }
}
