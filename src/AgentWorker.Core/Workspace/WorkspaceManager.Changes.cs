using System.Globalization;
using System.Text;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Workspace;

/// <summary>What <see cref="WorkspaceManager.DiffAsync"/> wrote: the stat of every change, and whether the diff file was cut at its limit.</summary>
public sealed record WorkspaceDiff(DiffStat Stat, bool Truncated);

/// <summary>
/// What an agent changed, and apply mode's commit and push. Every git command here runs on the worker's copy of the
/// clone's repository (<see cref="JobWorkspace.GitDir"/>) with the agent's checkout as its work tree, so nothing the
/// agent wrote into <c>repo/.git</c> is ever read by git on the host; commits the agent made itself are folded into
/// the one commit on top of <see cref="JobWorkspace.BaseCommit"/>.
/// </summary>
public sealed partial class WorkspaceManager
{
    private const int MaxListedFiles = 200;

    // --numstat is read as it comes; this bounds only how long git may go on writing it.
    private const long MaxNumStatBytes = 256L * 1024 * 1024;

    // A tree past the file limit was refused before git ran; only directories (which it does not count) are left to bound.
    private const int MaxEntriesPerFile = 4;

    /// <summary>
    /// Stages the workspace's final state and writes the diff against the base commit to <paramref name="diffFile"/>
    /// (<c>git diff --binary</c>: <c>git apply</c> reproduces it), at most <paramref name="maxBytes"/> of it: a longer diff
    /// is cut at a line and ends with <see cref="TruncatedMarker"/>. Nested repositories the agent made are left out. Every
    /// git run is bounded in time (<see cref="WorkspaceOptions.ChangesTimeout"/>, then its process tree is killed) and output.
    /// </summary>
    public async Task<WorkspaceDiff> DiffAsync(JobWorkspace workspace, string diffFile, long maxBytes, CancellationToken cancellationToken)
    {
        ExcludeNestedRepositories(workspace);
        await _git.GitAsync(OnCopy(workspace, "add", "--all"), cancellationToken).ConfigureAwait(false);
        string[] diff = ["diff", "--cached", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"];
        // A line per file, as many as the tree is wide: counted as they come, only the first ones kept.
        var listed = new List<string>();
        int files = 0, insertions = 0, deletions = 0;
        var numStat = OnCopy(workspace, [.. diff, "--numstat", workspace.BaseCommit, "--"]) with { MaxOutputBytes = MaxNumStatBytes };
        var output = await _git.RunAsync(numStat, line =>
        {
            var fields = line.Split('\t', 3);
            if (fields.Length < 3)
                return;
            files++;
            insertions += int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var added) ? added : 0;
            deletions += int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var removed) ? removed : 0;
            if (listed.Count <= MaxListedFiles)
                listed.Add(line);
        }, cancellationToken).ConfigureAwait(false);
        if (output.ExitCode != 0)
            throw new WorkspaceException($"git diff failed (exit {output.ExitCode}): {output.Errors}", permanent: false);
        var stat = DiffStat.Parse("", listed, MaxListedFiles) with { FilesChanged = files, Insertions = insertions, Deletions = deletions };
        // Most runs of audit agents change nothing: no second git run for an empty diff.
        if (stat.FilesChanged == 0)
        {
            await File.WriteAllBytesAsync(diffFile, [], cancellationToken).ConfigureAwait(false);
            return new WorkspaceDiff(stat, Truncated: false);
        }
        var write = OnCopy(workspace, [.. diff, "--binary", "--full-index", $"--output={diffFile}", workspace.BaseCommit, "--"]) with { MaxFileBytes = maxBytes };
        var written = await _git.RunAsync(write, cancellationToken).ConfigureAwait(false);
        if (written.ExitCode == 0)
            return new WorkspaceDiff(stat, Truncated: false);
        if (!File.Exists(diffFile) || new FileInfo(diffFile).Length < maxBytes)
            throw new WorkspaceException($"git diff failed (exit {written.ExitCode}): {written.Errors}", permanent: false);
        await TruncateAsync(diffFile, maxBytes, cancellationToken).ConfigureAwait(false);
        return new WorkspaceDiff(stat, Truncated: true);
    }

    /// <summary>The last line of a diff cut at MAX_DIFF_MB.</summary>
    public const string TruncatedMarker = "# agent-worker: diff truncated here: larger than MAX_DIFF_MB";

    /// <summary>Cuts <paramref name="file"/> after its last whole line that leaves room for the marker, and appends the marker.</summary>
    private static async Task TruncateAsync(string file, long maxBytes, CancellationToken cancellationToken)
    {
        var marker = Encoding.UTF8.GetBytes(TruncatedMarker + "\n");
        var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        await using (stream.ConfigureAwait(false))
        {
            var keep = Math.Max(0, maxBytes - marker.Length);
            var tail = new byte[(int)Math.Min(keep, 64 * 1024)];
            stream.Position = keep - tail.Length;
            await stream.ReadExactlyAsync(tail, cancellationToken).ConfigureAwait(false);
            var lastNewline = Array.LastIndexOf(tail, (byte)'\n');
            stream.SetLength(lastNewline < 0 ? keep - tail.Length : keep - tail.Length + lastNewline + 1);
            stream.Position = stream.Length;
            await stream.WriteAsync(marker, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Commits what <see cref="DiffAsync"/> staged, as the configured author; returns the commit id.</summary>
    public async Task<string> CommitAsync(JobWorkspace workspace, string message, CancellationToken cancellationToken)
    {
        var commit = OnCopy(workspace, "commit", "--quiet", "--no-verify", "--no-gpg-sign", "--cleanup=strip", "-m", message) with
        {
            Config = [("user.name", _git.Options.CommitAuthorName), ("user.email", _git.Options.CommitAuthorEmail)],
        };
        await _git.GitAsync(commit, cancellationToken).ConfigureAwait(false);
        return (await _git.GitAsync(OnCopy(workspace, "rev-parse", "--verify", "HEAD"), cancellationToken).ConfigureAwait(false))[0].Trim();
    }

    /// <summary>
    /// Pushes <paramref name="commit"/> to <paramref name="branch"/> of the job's remote, only if the branch is still
    /// where the job started (or, when it is being created, still absent): a branch that moved meanwhile is never overwritten.
    /// </summary>
    public async Task PushAsync(JobWorkspace workspace, RepoRef repo, string branch, string commit, CancellationToken cancellationToken)
    {
        var expected = workspace.BranchExists ? workspace.BaseCommit : "";
        var push = OnCopy(workspace, "push", "--porcelain", "--no-verify", $"--force-with-lease=refs/heads/{branch}:{expected}",
            "--", RepoUrls.ToGitUrl(repo.Url), $"{commit}:refs/heads/{branch}");
        var output = await _git.RunAsync(push, cancellationToken).ConfigureAwait(false);
        if (output.ExitCode == 0)
            return;
        // --porcelain: "!<tab>from:to<tab>[rejected] (reason)" per refused ref on stdout.
        var refused = output.Lines.Where(l => l.StartsWith('!')).Select(l => l.Split('\t').Last()).ToList();
        var reason = refused.Any(r => r.Contains("stale info", StringComparison.Ordinal))
            ? workspace.BranchExists
                ? $"branch '{branch}' moved on the remote since the job cloned it at {workspace.BaseCommit[..12]}"
                : $"branch '{branch}' was created on the remote meanwhile"
            : string.Join("; ", refused.Append(output.Errors).Where(s => s.Length > 0));
        throw new WorkspaceException($"push to '{branch}' refused: {reason}", permanent: false);
    }

    /// <summary>Copies the fresh clone's repository out of the agent's reach; returns the commit it checked out.</summary>
    private async Task<string> SnapshotAsync(JobWorkspace workspace, CancellationToken cancellationToken)
    {
        CopyDirectory(Path.Combine(workspace.RepoDir, ".git"), workspace.GitDir);
        return (await _git.GitAsync(OnCopy(workspace, "rev-parse", "--verify", "HEAD"), cancellationToken).ConfigureAwait(false))[0].Trim();
    }

    private GitCall OnCopy(JobWorkspace workspace, params string[] args) =>
        new(workspace.Root, workspace.Root, args) { GitDir = workspace.GitDir, WorkTree = workspace.RepoDir, Timeout = _git.Options.ChangesTimeout };

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var entry in SafeTree.Entries(source))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, entry.FullName));
            if (entry.LinkTarget is not null)
                continue;
            if (entry is DirectoryInfo)
                Directory.CreateDirectory(destination);
            else
                File.Copy(entry.FullName, destination);
        }
    }

    /// <summary>
    /// A <c>.git</c> (directory, or file pointing anywhere) below the top makes git read that repository when staging;
    /// those directories are excluded instead, so host git only ever reads the worker's own copy.
    /// </summary>
    private void ExcludeNestedRepositories(JobWorkspace workspace)
    {
        var lines = new StringBuilder();
        var seen = 0L;
        foreach (var entry in SafeTree.Entries(workspace.RepoDir))
        {
            if (++seen > (long)_git.Options.MaxRepoFiles * MaxEntriesPerFile)
                throw new WorkspaceException($"repository has more than {(long)_git.Options.MaxRepoFiles * MaxEntriesPerFile} entries (MAX_REPO_FILES, directories included)", permanent: true);
            var parent = Path.GetDirectoryName(entry.FullName)!;
            if (entry.Name == ".git" && parent != workspace.RepoDir)
                lines.Append('/').Append(EscapePattern(Path.GetRelativePath(workspace.RepoDir, parent))).Append("/\n");
        }
        if (lines.Length > 0)
        {
            Directory.CreateDirectory(Path.Combine(workspace.GitDir, "info"));
            File.AppendAllText(Path.Combine(workspace.GitDir, "info", "exclude"), lines.ToString());
        }
    }

    private static string EscapePattern(string path)
    {
        var escaped = new StringBuilder(path.Length);
        foreach (var c in path)
        {
            if (c is '\\' or '*' or '?' or '[' or ']' or '!' or '#' or ' ')
                escaped.Append('\\');
            escaped.Append(c);
        }
        return escaped.ToString();
    }
}
