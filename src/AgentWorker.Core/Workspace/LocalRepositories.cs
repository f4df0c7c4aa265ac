using System.Runtime.InteropServices;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Which local repositories (absolute paths and <c>file:</c> URLs) a job may clone. The worker's own directories are
/// refused by name, after symlinks are resolved; with LOCAL_REPO_ROOTS only repositories under those roots are taken; a
/// root worker refuses one its sandbox user cannot read (and <see cref="GitClient"/> reads it with that user's rights).
/// Messages never name the worker's own paths.
/// </summary>
internal static partial class LocalRepositories
{
    public static bool IsLocal(string url) => Path.IsPathRooted(url) || url.StartsWith("file:", StringComparison.Ordinal);

    /// <summary>Why the job may not clone <paramref name="url"/>, or null when it may (or when it is not local).</summary>
    public static string? Refusal(string url, WorkspaceOptions options)
    {
        if (!IsLocal(url))
            return null;
        var path = Resolve(Path.IsPathRooted(url) ? url : new Uri(url).LocalPath);
        if (options.PrivatePaths.Any(own => IsUnder(path, Resolve(own))))
            return "the repository lies inside the worker's own directories (data dir, clone cache or WORK_DIR)";
        if (options.LocalRepoRoots is { } roots && !roots.Any(root => IsUnder(path, Resolve(root))))
            return "the repository lies outside the directories LOCAL_REPO_ROOTS allows";
        if (options.LocalReaderUid is { } uid && Directory.Exists(path) && !MayList(path, uid))
            return $"the repository is not readable by the sandbox user (uid {uid}): local repositories are read with that user's rights";
        return null;
    }

    /// <summary>
    /// Whether <paramref name="uid"/> (with the same gid, no other groups: how the sandbox user runs) may enter every
    /// directory down to <paramref name="directory"/> and list it, from the mode bits (ACLs are not read). Only for the
    /// message: git reading as that user is what holds.
    /// </summary>
    private static bool MayList(string directory, int uid)
    {
        var path = "/";
        foreach (var segment in directory.Split('/', StringSplitOptions.RemoveEmptyEntries).Prepend(""))
        {
            path = Path.Combine(path, segment);
            if (FileStatus.Read(FileStatus.CurrentDirectory, path, 0, out var status) != 0 || !Allows(status, uid, path == directory ? 5 : 1))
                return false;
        }
        return true;
    }

    /// <summary>Whether the owner, group or other bits that apply to <paramref name="uid"/> hold all of <paramref name="wanted"/> (r=4, x=1).</summary>
    private static bool Allows((int Mode, uint Uid, uint Gid) status, int uid, int wanted)
    {
        var shift = status.Uid == (uint)uid ? 6 : status.Gid == (uint)uid ? 3 : 0;
        return ((status.Mode >> shift) & wanted) == wanted;
    }

    private static bool IsUnder(string path, string directory) =>
        path == directory || path.StartsWith(directory.TrimEnd('/') + "/", StringComparison.Ordinal);

    /// <summary>The path with every symlink and <c>..</c> resolved; a path that does not exist (yet) is only normalised.</summary>
    private static string Resolve(string path)
    {
        var resolved = Native.RealPath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
            return Path.GetFullPath(path);
        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? Path.GetFullPath(path);
        }
        finally
        {
            Native.Free(resolved);
        }
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
        public static partial IntPtr RealPath(string path, IntPtr resolved);

        [LibraryImport("libc", EntryPoint = "free")]
        public static partial void Free(IntPtr pointer);
    }
}
