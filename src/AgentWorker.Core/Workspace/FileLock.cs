using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// An advisory <c>flock(2)</c> on a file or directory, shared or exclusive, held until disposed. Locks taken through
/// separate opens conflict whether they are in one process or in several, so slots of one worker and other worker
/// processes on the host are excluded alike. The descriptor is close-on-exec: no git or agent process inherits it.
/// </summary>
internal sealed partial class FileLock : IDisposable
{
    private const int OpenReadOnly = 0;
    private const int OpenCreate = 0x40;
    private const int OpenCloseOnExec = 0x80000;
    private const int LockShared = 1;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int ErrorInterrupted = 4;
    private const int ErrorWouldBlock = 11;
    private const UnixFileMode FileMode644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private static readonly TimeSpan MaxPoll = TimeSpan.FromMilliseconds(50);

    private readonly SafeFileHandle _handle;

    private FileLock(SafeFileHandle handle) => _handle = handle;

    /// <summary>Waits until the lock is granted (polling, so the wait can be cancelled).</summary>
    public static async Task<FileLock> AcquireAsync(string path, bool exclusive, bool create, CancellationToken cancellationToken)
    {
        var poll = TimeSpan.FromMilliseconds(2);
        while (true)
        {
            if (TryAcquire(path, exclusive, create) is { } held)
                return held;
            await Task.Delay(poll, cancellationToken).ConfigureAwait(false);
            poll = poll * 2 < MaxPoll ? poll * 2 : MaxPoll;
        }
    }

    /// <summary>The lock if it is free now, else null. Throws <see cref="IOException"/> when <paramref name="path"/> cannot be opened.</summary>
    public static FileLock? TryAcquire(string path, bool exclusive, bool create)
    {
        var fd = Native.Open(path, OpenReadOnly | OpenCloseOnExec | (create ? OpenCreate : 0), (int)FileMode644);
        if (fd < 0)
            throw new IOException($"cannot open {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        int result;
        do
            result = Native.Flock(fd, (exclusive ? LockExclusive : LockShared) | LockNonBlocking);
        while (result < 0 && Marshal.GetLastPInvokeError() == ErrorInterrupted);
        if (result < 0)
        {
            var error = Marshal.GetLastPInvokeError();
            var message = Marshal.GetLastPInvokeErrorMessage();
            handle.Dispose();
            return error == ErrorWouldBlock ? null : throw new IOException($"cannot lock {path}: {message}");
        }
        // Whoever held the lock before may have removed the file (a sweeper does, under the exclusive lock): a lock on a
        // removed file guards nothing, and the path may already name a new file that others lock.
        if (IsRemoved(handle))
        {
            handle.Dispose();
            return null;
        }
        return new FileLock(handle);
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>Whether the file <paramref name="handle"/> was opened on has been removed since.</summary>
    internal static bool IsRemoved(SafeFileHandle handle) =>
        new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget?.EndsWith(" (deleted)", StringComparison.Ordinal) == true;

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags, int mode);

        [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
        public static partial int Flock(int fd, int operation);
    }
}
