using System.Diagnostics;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Walks and removes directory trees an agent had write access to. The agent can plant symlinks anywhere in them,
/// so nothing here ever goes through a link: links are visited (and removed) as links.
/// </summary>
public static class SafeTree
{
    /// <summary>Every entry under <paramref name="root"/> (not the root itself), without descending into symlinks.</summary>
    public static IEnumerable<FileSystemInfo> Entries(string root)
    {
        var pending = new Stack<DirectoryInfo>();
        pending.Push(new DirectoryInfo(root));
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            IEnumerable<FileSystemInfo> children;
            try
            {
                children = directory.EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0, RecurseSubdirectories = false });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            foreach (var child in children)
            {
                yield return child;
                if (child is DirectoryInfo sub && sub.LinkTarget is null)
                    pending.Push(sub);
            }
        }
    }

    /// <summary>
    /// Removes <paramref name="path"/> whatever an agent left in it (links, deep nesting, directories without
    /// permissions), staying on its file system and never following links.
    /// </summary>
    public static void Delete(string path)
    {
        if (!Directory.Exists(path) && !File.Exists(path))
            return;
        try
        {
            Directory.Delete(path, recursive: true);
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Fall through: trees too deep for the runtime's recursion or with locked-down directories.
        }
        using var rm = Process.Start(new ProcessStartInfo("rm", ["-rf", "--one-file-system", "--", path]) { RedirectStandardError = true })!;
        var error = rm.StandardError.ReadToEnd();
        rm.WaitForExit();
        if (rm.ExitCode != 0 && Directory.Exists(path))
        {
            // Directories an agent made unreadable: give them back to the owner (never through a link), then retry.
            foreach (var entry in Entries(path).OfType<DirectoryInfo>().Where(d => d.LinkTarget is null))
                File.SetUnixFileMode(entry.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            using var retry = Process.Start(new ProcessStartInfo("rm", ["-rf", "--one-file-system", "--", path]) { RedirectStandardError = true })!;
            error = retry.StandardError.ReadToEnd();
            retry.WaitForExit();
            if (retry.ExitCode != 0)
                throw new IOException($"cannot remove {path}: {error.Trim()}");
        }
    }
}
