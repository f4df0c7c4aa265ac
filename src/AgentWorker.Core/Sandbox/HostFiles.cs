using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;

namespace AgentWorker.Core.Sandbox;

/// <summary>What a root worker does to host files so an unprivileged sandbox user can use them.</summary>
internal static partial class HostFiles
{
    private const string CopyRoot = "/var/lib/agent-worker";

    /// <summary>Gives <paramref name="path"/> and everything under it to <paramref name="uid"/> (group too), never following symlinks.</summary>
    public static void ChangeOwner(string path, int uid)
    {
        Chown(path, uid);
        // A repository can commit symlinks to host paths; the walk never goes through one, and lchown changes the link itself.
        foreach (var entry in Workspace.SafeTree.Entries(path))
            Chown(entry.FullName, uid);
    }

    /// <summary>
    /// <paramref name="directory"/> if <paramref name="uid"/> can read it where it is, else a root-owned, world-readable
    /// copy under /var/lib/agent-worker (the worker's binaries may sit in a private directory, e.g. a mode-700 temp dir).
    /// Nothing under <paramref name="excluded"/> is copied: the worker's state may live beside its binary.
    /// </summary>
    public static string ReadableCopy(string directory, int uid, IReadOnlyList<string> excluded)
    {
        if (CanRead(directory, uid))
            return directory;
        var files = Workspace.SafeTree.Entries(directory).OfType<FileInfo>()
            .Where(f => f.LinkTarget is null && !excluded.Any(x => f.FullName == x || f.FullName.StartsWith(x.TrimEnd('/') + "/", StringComparison.Ordinal)))
            .Select(f => f.FullName)
            .ToArray();
        var stamp = files.Select(f => File.GetLastWriteTimeUtc(f).Ticks).DefaultIfEmpty().Max();
        var key = Name(Encoding.UTF8.GetBytes($"{directory}\n{stamp}"));
        var target = Path.Combine(CopyRoot, $"app-{key}");
        if (Directory.Exists(target))
            return target;
        Directory.CreateDirectory(CopyRoot);
        var staging = $"{target}.{Environment.ProcessId}.tmp";
        foreach (var file in files)
        {
            var copy = Path.Combine(staging, Path.GetRelativePath(directory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy, overwrite: true);
            var mode = File.GetUnixFileMode(file) | UnixFileMode.OtherRead | UnixFileMode.GroupRead;
            if ((mode & UnixFileMode.UserExecute) != 0)
                mode |= UnixFileMode.OtherExecute | UnixFileMode.GroupExecute;
            File.SetUnixFileMode(copy, mode);
        }
        try
        {
            Directory.Move(staging, target);
        }
        catch (IOException) when (Directory.Exists(target))
        {
            // Another worker made the same copy first.
            Directory.Delete(staging, recursive: true);
        }
        return target;
    }

    /// <summary>Asks the kernel, as that user, whether the directory can be listed and entered.</summary>
    private static bool CanRead(string directory, int uid)
    {
        var id = uid.ToString(CultureInfo.InvariantCulture);
        var start = new ProcessStartInfo("setpriv") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { $"--reuid={id}", $"--regid={id}", "--clear-groups", "--", "test", "-r", directory, "-a", "-x", directory })
            start.ArgumentList.Add(arg);
        using var test = Process.Start(start)!;
        test.WaitForExit();
        return test.ExitCode == 0;
    }

    /// <summary>
    /// A world-readable copy of <paramref name="file"/> under /var/lib/agent-worker, named by its content (so workers
    /// of different versions never swap each other's files), for a sandbox user that cannot read where it lies.
    /// </summary>
    public static string PublicCopy(string file)
    {
        var content = File.ReadAllBytes(file);
        var target = Path.Combine(CopyRoot, $"{Path.GetFileNameWithoutExtension(file)}-{Name(content)}{Path.GetExtension(file)}");
        if (File.Exists(target))
            return target;
        Directory.CreateDirectory(CopyRoot);
        var staging = $"{target}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(staging, content);
        File.SetUnixFileMode(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(staging, target, overwrite: true);
        return target;
    }

    /// <summary>
    /// A directory holding exactly <paramref name="entries"/> (relative name and content; null content: an empty directory),
    /// named by all of them under <paramref name="parent"/> or, when null, under /var/lib/agent-worker (world-readable, for a
    /// sandbox user); built once, then reused by every worker that needs the same content.
    /// </summary>
    public static string ContentDirectory(string? parent, string prefix, IReadOnlyList<(string Name, byte[]? Content)> entries)
    {
        var key = new XxHash3();
        foreach (var (name, content) in entries)
        {
            key.Append(Encoding.UTF8.GetBytes($"{name}\n{(content is null ? -1 : content.Length)}\n"));
            key.Append(content ?? []);
        }
        var root = parent ?? CopyRoot;
        var target = Path.Combine(root, $"{prefix}-{key.GetCurrentHashAsUInt64().ToString("x16", CultureInfo.InvariantCulture)}");
        if (Directory.Exists(target))
            return target;
        // Sandboxes of one process may build the same directory at once: each stages its own.
        var staging = $"{target}.{Guid.NewGuid():N}.tmp";
        var directoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead |
            UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        Directory.CreateDirectory(staging, directoryMode);
        foreach (var (name, content) in entries)
        {
            var path = Path.Combine(staging, name);
            if (content is null)
            {
                Directory.CreateDirectory(path, directoryMode);
                continue;
            }
            File.WriteAllBytes(path, content);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        try
        {
            Directory.Move(staging, target);
        }
        catch (IOException) when (Directory.Exists(target))
        {
            // Another worker built the same directory first.
            Directory.Delete(staging, recursive: true);
        }
        return target;
    }

    // The worker's own files in a directory only root writes to: no adversary picks the content, so a fast non-cryptographic
    // hash names them as well as SHA-256 would, without loading OpenSSL (about 5 MB of resident memory) at start-up.
    private static string Name(byte[] content) => XxHash3.HashToUInt64(content).ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>The login name of <paramref name="uid"/>, or null when the host has none (the process runner starts users by name).</summary>
    public static string? UserName(int uid)
    {
        var entry = Native.GetPasswordEntry((uint)uid);
        return entry == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry));
    }

    /// <summary>Gives one file or link (not what it points to) to <paramref name="uid"/>, group too.</summary>
    public static void Chown(string path, int uid)
    {
        if (Native.LChown(path, uid, uid) != 0)
            throw new IOException($"cannot give {path} to uid {uid} (errno {Marshal.GetLastPInvokeError()})");
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int LChown(string path, int uid, int gid);

        // Called once per sandbox, at start-up: the static buffer getpwuid returns is read before anyone else can call it.
        [LibraryImport("libc", EntryPoint = "getpwuid")]
        public static partial IntPtr GetPasswordEntry(uint uid);
    }
}
