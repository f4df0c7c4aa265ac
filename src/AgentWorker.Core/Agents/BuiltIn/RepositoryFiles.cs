using System.Collections.Frozen;
using System.Text;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// The files of a checked-out repository as the built-in agents see them: the repository's own files
/// in ordinal path order, without version-control metadata, vendored or build directories, symlinks,
/// binary files or oversized files, and never more than a fixed number of files.
/// </summary>
internal sealed class RepositoryFiles
{
    public const int DefaultMaxFiles = 20_000;
    public const int DefaultMaxFileBytes = 1024 * 1024;
    private const int BinaryProbeBytes = 8 * 1024;

    // Other people's code and generated output: findings there are not the repository's to fix, and
    // these trees are often larger than the repository itself.
    private static readonly FrozenSet<string> SkippedDirectories = FrozenSet.Create(StringComparer.Ordinal,
        ".git", ".hg", ".svn", "node_modules", "bin", "obj", "vendor", "dist", "target", ".venv", "venv", "__pycache__", ".tox");

    // Hidden files must be listed: .env, .nvmrc and .github/ are exactly what the agents look for.
    private static readonly EnumerationOptions ListOptions = new()
    {
        AttributesToSkip = 0,
        IgnoreInaccessible = true,
        RecurseSubdirectories = false,
    };

    private readonly string root;
    private readonly AgentOutput output;
    private readonly int maxFileBytes;
    private readonly FrozenSet<string> pathSet;

    private RepositoryFiles(string root, AgentOutput output, int maxFileBytes, List<string> paths)
    {
        this.root = root;
        this.output = output;
        this.maxFileBytes = maxFileBytes;
        Paths = paths;
        pathSet = paths.ToFrozenSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// Every listed file, relative with forward slashes, in ordinal order — including the binary and
    /// oversized ones <see cref="ReadTextFiles"/> skips, so agents can still see that a file exists.
    /// </summary>
    public IReadOnlyList<string> Paths { get; }

    /// <summary>How many text files <see cref="ReadTextFiles"/> has produced so far.</summary>
    public int FilesRead { get; private set; }

    public static RepositoryFiles List(
        string workspace,
        AgentOutput output,
        CancellationToken cancellationToken,
        int maxFiles = DefaultMaxFiles,
        int maxFileBytes = DefaultMaxFileBytes)
    {
        var root = Path.GetFullPath(workspace);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"workspace '{workspace}' does not exist");

        var paths = new List<string>();
        var pending = new Stack<(string Full, string Relative)>();
        pending.Push((root, ""));
        while (pending.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (directory, relativeDirectory) = pending.Pop();
            var entries = new DirectoryInfo(directory).EnumerateFileSystemInfos("*", ListOptions)
                .OrderBy(e => e.Name, StringComparer.Ordinal)
                .ToList();
            var subdirectories = new List<(string, string)>();
            foreach (var entry in entries)
            {
                var relative = relativeDirectory.Length == 0 ? entry.Name : $"{relativeDirectory}/{entry.Name}";
                // A link can point anywhere on the host; following it would read outside the workspace.
                if (entry.Attributes.HasFlag(FileAttributes.ReparsePoint))
                {
                    output.Log($"skipped symlink {relative}");
                    continue;
                }
                if (entry is DirectoryInfo)
                {
                    if (!SkippedDirectories.Contains(entry.Name))
                        subdirectories.Add((entry.FullName, relative));
                    continue;
                }
                if (paths.Count == maxFiles)
                {
                    output.Log($"stopped listing after {maxFiles} files; the rest of the repository is not scanned", "warn");
                    return Sorted(root, output, maxFileBytes, paths);
                }
                paths.Add(relative);
            }
            for (var i = subdirectories.Count - 1; i >= 0; i--)
                pending.Push(subdirectories[i]);
        }
        return Sorted(root, output, maxFileBytes, paths);
    }

    /// <summary>Reads the text files lazily, so only one file's content is held at a time by the walker.</summary>
    public IEnumerable<TextFile> ReadTextFiles(CancellationToken cancellationToken)
    {
        var binary = 0;
        foreach (var path in Paths)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (text, skipReason) = Read(path);
            if (text is null)
            {
                if (skipReason is null)
                    binary++;
                else
                    output.Log($"skipped {path}: {skipReason}", "warn");
                continue;
            }
            FilesRead++;
            yield return new TextFile(path, text);
        }
        output.Log($"read {FilesRead} text files; skipped {binary} binary files");
    }

    public bool Exists(string relativePath) => pathSet.Contains(relativePath);

    private static RepositoryFiles Sorted(string root, AgentOutput output, int maxFileBytes, List<string> paths)
    {
        // Traversal order differs from path order ("a-b" sorts before "a/b"); findings follow path order.
        paths.Sort(StringComparer.Ordinal);
        return new RepositoryFiles(root, output, maxFileBytes, paths);
    }

    /// <summary>The text, or null with a reason for a warning (null reason: binary, which is routine and only counted).</summary>
    private (string? Text, string? SkipReason) Read(string path)
    {
        try
        {
            using var stream = new FileStream(Path.Combine(root, path), FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete, bufferSize: 1, FileOptions.SequentialScan);
            if (stream.Length > maxFileBytes)
                return (null, $"larger than {maxFileBytes / 1024} KiB");
            var bytes = new byte[stream.Length];
            var length = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            var content = bytes.AsSpan(0, length);
            if (content[..Math.Min(length, BinaryProbeBytes)].Contains((byte)0))
                return (null, null);
            if (content.StartsWith(Encoding.UTF8.Preamble))
                content = content[Encoding.UTF8.Preamble.Length..];
            return (Encoding.UTF8.GetString(content), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, $"unreadable ({e.GetType().Name})");
        }
    }
}
