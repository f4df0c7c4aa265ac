using System.Diagnostics;

namespace AgentWorker.Testing;

/// <summary>
/// A small tmpfs of the test's own, mounted on a temp directory: a disk the test can fill up (<see cref="Fill"/>) and
/// free again (<see cref="Free"/>). Disposing unmounts it (lazily if something still holds it) and removes the
/// directory, so a failed test leaves no mount behind. Needs root (CI runs the tests as root).
/// </summary>
public sealed class TmpfsMount : IDisposable
{
    private const string FillerName = "filler";

    private readonly TempDirectory _dir;
    private bool _mounted;

    private TmpfsMount(TempDirectory dir) => _dir = dir;

    public string Path => _dir.Path;

    public string Combine(params string[] parts) => _dir.Combine(parts);

    public static TmpfsMount Create(int megabytes)
    {
        if (Environment.UserName != "root")
            throw new InvalidOperationException("mounting a tmpfs needs root: run the tests as root (as scripts/test.sh in CI does)");
        var mount = new TmpfsMount(new TempDirectory("aw-tmpfs"));
        try
        {
            Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m,mode=1777", "tmpfs", mount.Path);
            mount._mounted = true;
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <summary>Free bytes on the mount, as statvfs reports them.</summary>
    public long AvailableBytes => new DriveInfo(Path).AvailableFreeSpace;

    /// <summary>Writes a filler file page by page until the device refuses (ENOSPC); returns its size.</summary>
    public long Fill()
    {
        var page = new byte[4096];
        // Unbuffered, so the write that fails is the one that hit ENOSPC and nothing is left to flush at dispose.
        using var filler = new FileStream(Combine(FillerName), FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);
        try
        {
            while (true)
                filler.Write(page);
        }
        catch (IOException)
        {
            return filler.Length;
        }
    }

    /// <summary>Deletes the filler: the space is back.</summary>
    public void Free() => File.Delete(Combine(FillerName));

    /// <summary>Everything on the mount but the filler.</summary>
    public IReadOnlyList<string> Entries() =>
        [.. Directory.EnumerateFileSystemEntries(Path).Where(entry => System.IO.Path.GetFileName(entry) != FillerName)];

    public void Dispose()
    {
        if (_mounted)
        {
            try
            {
                Run("umount", Path);
            }
            catch (InvalidOperationException)
            {
                // Busy (a process of a failed test still inside): detach it now, the kernel frees it when the last user goes.
                Run("umount", "-l", Path);
            }
            _mounted = false;
        }
        _dir.Dispose();
    }

    private static void Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr}");
    }
}
