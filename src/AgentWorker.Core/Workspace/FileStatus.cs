using System.Runtime.InteropServices;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// <c>statx(2)</c>: the mode, owner and group of a file, with one layout on every architecture (unlike <c>struct stat</c>).
/// </summary>
internal static partial class FileStatus
{
    /// <summary>Paths relative to the working directory (or absolute).</summary>
    public const int CurrentDirectory = -100;

    private const uint TypeModeOwnerGroup = 0x1 | 0x2 | 0x8 | 0x10;

    /// <summary>Reads the status of <paramref name="name"/> under the open <paramref name="directory"/>; returns 0, or the errno.</summary>
    public static int Read(int directory, string name, int flags, out (int Mode, uint Uid, uint Gid) status)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (Native.Statx(directory, name, flags, TypeModeOwnerGroup, ref MemoryMarshal.GetReference(buffer)) < 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }
        // stx_uid and stx_gid are the u32s at offsets 20 and 24, stx_mode the u16 at 28.
        status = (BitConverter.ToUInt16(buffer[28..]), BitConverter.ToUInt32(buffer[20..]), BitConverter.ToUInt32(buffer[24..]));
        return 0;
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Statx(int directory, string path, int flags, uint mask, ref byte buffer);
    }
}
