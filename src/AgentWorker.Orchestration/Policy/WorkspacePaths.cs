namespace AgentWorker.Orchestration.Policy;

/// <summary>A path checked to stay inside a workspace: <see cref="Relative"/> is "" for the root, else "a/b" (no ".", "..", or links left to follow out).</summary>
internal sealed record WorkspacePath(string Relative)
{
    public bool IsRoot => Relative.Length == 0;

    /// <summary>The path as a tool inside the sandbox sees it, under <paramref name="workspace"/> (e.g. /workspace).</summary>
    public string Inside(string workspace) => IsRoot ? workspace : $"{workspace}/{Relative}";

    /// <summary>The containing directory as seen inside.</summary>
    public string ParentInside(string workspace) =>
        Relative.LastIndexOf('/') is var slash and > 0 ? $"{workspace}/{Relative[..slash]}" : workspace;
}

/// <summary>
/// Confines tool paths to the task's workspace before anything runs: NUL bytes, "..", absolute paths outside
/// <c>/workspace</c>, and symlinks whose target leads out (absolutely, or by climbing above the root) are refused.
/// Links inside the workspace are followed the way the kernel would, so the tool is handed the real path.
/// </summary>
internal static class WorkspacePaths
{
    /// <summary>Where the workspace is mounted inside the sandbox; absolute paths under it are accepted.</summary>
    public const string InsideRoot = "/workspace";

    /// <summary>The kernel's own limit on links followed while resolving one path (ELOOP).</summary>
    private const int MaxLinks = 40;

    /// <param name="workspaceRoot">The workspace directory on the host.</param>
    /// <param name="requested">The path the task named.</param>
    /// <param name="field">The argument's name, for messages.</param>
    /// <param name="allowRoot">Whether the workspace itself is an acceptable answer (list, grep, find) or a file is needed.</param>
    public static WorkspacePath Resolve(string workspaceRoot, string requested, string field, bool allowRoot)
    {
        if (requested.Contains('\0', StringComparison.Ordinal))
            throw TaskRefusedException.Policy($"{field}: path contains a NUL byte");
        var path = requested;
        if (path.StartsWith('/'))
        {
            if (path != InsideRoot && !path.StartsWith(InsideRoot + "/", StringComparison.Ordinal))
                throw TaskRefusedException.Policy($"{field}: absolute path '{requested}' is outside the workspace (use a relative path or one under {InsideRoot})");
            path = path[InsideRoot.Length..];
        }
        var parts = Split(path);
        if (parts.Contains(".."))
            throw TaskRefusedException.Policy($"{field}: '..' is not allowed in paths ('{requested}')");

        var resolved = new List<string>();
        // Components still to walk, next on top; a link's target is pushed in its place.
        var pending = new Stack<string>(Enumerable.Reverse(parts));
        var links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == "..")
            {
                // Only a link's target can bring ".." here.
                if (resolved.Count == 0)
                    throw TaskRefusedException.Policy($"{field}: '{requested}' leads out of the workspace through a symlink");
                resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            var host = Path.Combine(workspaceRoot, Path.Combine([.. resolved, part]));
            var target = new FileInfo(host).LinkTarget;
            if (target is null)
            {
                resolved.Add(part);
                continue;
            }
            if (++links > MaxLinks)
                throw TaskRefusedException.Policy($"{field}: '{requested}' has too many levels of symlinks");
            var linkName = string.Join('/', [.. resolved, part]);
            if (target.StartsWith('/'))
            {
                // Inside the sandbox an absolute link under /workspace stays in; any other absolute target is the host's or the sandbox's.
                if (target != InsideRoot && !target.StartsWith(InsideRoot + "/", StringComparison.Ordinal))
                    throw TaskRefusedException.Policy($"{field}: '{requested}' leads out of the workspace through the symlink '{linkName}' -> '{target}'");
                resolved.Clear();
                target = target[InsideRoot.Length..];
            }
            foreach (var step in Enumerable.Reverse(Split(target)))
                pending.Push(step);
        }
        if (resolved.Count == 0 && !allowRoot)
            throw TaskRefusedException.Argument($"{field}: a file path is required");
        return new WorkspacePath(string.Join('/', resolved));
    }

    /// <summary>Checks a workspace name (one directory under the tool workspace root).</summary>
    public static string WorkspaceDirectory(string root, string name)
    {
        if (name.Length is 0 or > 128 || name is "." or ".." || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw TaskRefusedException.Policy($"workspace: '{name}' is not a workspace name (1-128 letters, digits, '.', '_' or '-')");
        return Path.Combine(root, name);
    }

    private static List<string> Split(string path) =>
        [.. path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".")];
}
