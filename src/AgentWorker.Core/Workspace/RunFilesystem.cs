using System.Globalization;
using System.Runtime.InteropServices;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Size-capped tmpfs mounts for an attempt's writable trees (needs a root worker): a write past the cap fails with ENOSPC
/// inside the sandbox while the agent runs, instead of filling WORK_DIR's disk and being noticed afterwards.
/// </summary>
internal static partial class RunFilesystem
{
    private const ulong NoSuid = 2;
    private const ulong NoDev = 4;
    private const int Detach = 2;

    // A tree is taken as filled when less than this is left: tmpfs gives out whole pages, so "full" is never exactly 0.
    private const long FullMarginBytes = 64 * 1024;

    /// <summary>Mounts a private tmpfs of at most <paramref name="bytes"/> and <paramref name="inodes"/> entries on the existing directory.</summary>
    public static void Mount(string directory, long bytes, long inodes)
    {
        var data = string.Create(CultureInfo.InvariantCulture, $"size={bytes},nr_inodes={inodes},mode=0755");
        if (Native.Mount("agent-worker", directory, "tmpfs", NoSuid | NoDev, data) != 0)
            throw new IOException($"cannot mount a tmpfs for the attempt (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Detaches the mount at <paramref name="directory"/> (lazily: a process still inside does not keep it busy).</summary>
    public static void Unmount(string directory)
    {
        if (Native.Unmount(directory, Detach) != 0)
            throw new IOException($"cannot unmount the attempt's tmpfs (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Detaches every mount at or below <paramref name="directory"/>, deepest first (what a killed worker left behind).</summary>
    public static void UnmountAllUnder(string directory)
    {
        foreach (var mountPoint in MountPoints().Where(m => m == directory || m.StartsWith(directory + "/", StringComparison.Ordinal)).OrderByDescending(m => m.Length))
            Unmount(mountPoint);
    }

    /// <summary>Whether the tmpfs at <paramref name="directory"/> has (nearly) no room left.</summary>
    public static bool IsFull(string directory) => new DriveInfo(directory).AvailableFreeSpace < FullMarginBytes;

    // /proc/self/mountinfo field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
    private static IEnumerable<string> MountPoints() =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length > 4)
            .Select(fields => Unescape(fields[4]));

    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
            return field;
        var bytes = new List<byte>(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length)
            {
                bytes.Add(Convert.ToByte(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }
        return System.Text.Encoding.UTF8.GetString([.. bytes]);
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Mount(string source, string target, string type, ulong flags, string data);

        [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Unmount(string target, int flags);
    }
}
