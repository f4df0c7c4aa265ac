using System.Runtime.InteropServices;
using AgentWorker.Core.Workspace;
using Microsoft.Win32.SafeHandles;

namespace AgentWorker.Core.Artifacts;

/// <summary>
/// Opens files in a tree an agent wrote (its artifacts folder, its workspace) for the worker to read. Only a regular file
/// is ever opened for reading: every directory on the way is opened with <c>O_NOFOLLOW</c>, so a symbolic link anywhere on
/// the path is refused; the entry is looked at with <c>fstatat(AT_SYMLINK_NOFOLLOW)</c> first, so a FIFO, socket or device
/// is never opened; the file is opened with <c>O_NOFOLLOW|O_NONBLOCK</c> (a FIFO swapped in after the look opens at once
/// instead of blocking until a writer comes) and its descriptor checked with <c>fstat</c>, so what is read is what was checked.
/// </summary>
internal static partial class AgentFiles
{
    private const int OpenNonBlocking = 0x800;
    private const int OpenNoControllingTerminal = 0x100;
    private const int OpenCloseOnExec = 0x80000;
    private const int AtEmptyPath = 0x1000;
    private const int AtSymlinkNoFollow = 0x100;
    private const int FileTypeMask = 0xF000;
    private const int RegularFile = 0x8000;
    private const int Directory = 0x4000;
    private const int SymbolicLink = 0xA000;
    private const int NoSuchFile = 2;
    private const int NoSuchDevice = 6;
    private const int AccessDenied = 13;
    private const int NotADirectory = 20;
    private const int TooManyLinks = 40;
    private const int NoSpace = 28;
    private const int QuotaExceeded = 122;

    // The only open(2) flags whose values differ between the architectures .NET runs on Linux.
    private static readonly bool Arm = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm;
    private static readonly int OpenDirectory = Arm ? 0x4000 : 0x10000;
    private static readonly int OpenNoFollow = Arm ? 0x8000 : 0x20000;

    /// <summary>
    /// Opens <paramref name="relativePath"/> (segments separated by <c>/</c>, none of them <c>..</c>) under
    /// <paramref name="root"/>, a directory of the worker's, for reading. Throws <see cref="ArtifactException"/> with a
    /// short reason (never a host path) when it is not a regular file reached without a link.
    /// </summary>
    public static FileStream OpenRegular(string root, string relativePath)
    {
        var segments = relativePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Length == 0 || segments.Any(s => s is "." or ".."))
            throw new ArtifactException("not a path inside the tree");
        var directory = Native.Open(root, OpenDirectory | OpenCloseOnExec, 0);
        if (directory < 0)
            throw Refused(Marshal.GetLastPInvokeError());
        try
        {
            foreach (var segment in segments[..^1])
            {
                var next = Native.OpenAt(directory, segment, OpenDirectory | OpenNoFollow | OpenCloseOnExec, 0);
                if (next < 0)
                {
                    // O_DIRECTORY|O_NOFOLLOW fails on a link as on a file (ENOTDIR); the reason says which it was.
                    var error = Marshal.GetLastPInvokeError();
                    throw error == NotADirectory && Type(directory, segment, AtSymlinkNoFollow) == SymbolicLink ? NotRegular(SymbolicLink) : Refused(error);
                }
                _ = Native.Close(directory);
                directory = next;
            }
            var name = segments[^1];
            if (Type(directory, name, AtSymlinkNoFollow) is var looked and not RegularFile)
                throw NotRegular(looked);
            var fd = Native.OpenAt(directory, name, OpenNoFollow | OpenNonBlocking | OpenNoControllingTerminal | OpenCloseOnExec, 0);
            if (fd < 0)
                throw Refused(Marshal.GetLastPInvokeError());
            var handle = new SafeFileHandle(fd, ownsHandle: true);
            var opened = Type(fd, "", AtEmptyPath);
            if (opened != RegularFile)
            {
                handle.Dispose();
                throw NotRegular(opened);
            }
            return new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        finally
        {
            if (directory >= 0)
                _ = Native.Close(directory);
        }
    }

    /// <summary>A short reason for an I/O failure on an agent's or the store's file: the runtime's messages name host paths.</summary>
    public static string Reason(Exception e) => e switch
    {
        ArtifactException => e.Message,
        IOException { HResult: NoSpace or QuotaExceeded } => "no space left on the worker's disk",
        UnauthorizedAccessException => "permission denied",
        _ => "read or write error",
    };

    /// <summary>The file type bits of <c>st_mode</c>.</summary>
    private static int Type(int directory, string name, int flags) =>
        FileStatus.Read(directory, name, flags, out var status) is var errno and not 0 ? throw Refused(errno) : status.Mode & FileTypeMask;

    private static ArtifactException NotRegular(int type) => new(type switch
    {
        Directory => "not a regular file (a directory)",
        SymbolicLink => "is or lies under a symbolic link",
        _ => "not a regular file",
    });

    private static ArtifactException Refused(int errno) => new(errno switch
    {
        TooManyLinks => "is or lies under a symbolic link",
        NoSuchFile or NotADirectory => "no such file",
        NoSuchDevice => "not a regular file",
        AccessDenied => "permission denied",
        _ => $"cannot be opened (errno {errno})",
    });

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags, int mode);

        [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int OpenAt(int directory, string path, int flags, int mode);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        public static partial int Close(int fd);


    }
}
