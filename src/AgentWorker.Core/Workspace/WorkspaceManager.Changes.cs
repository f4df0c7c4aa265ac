using System.Text;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// What an agent changed, and apply mode's commit and push. Every git command here runs on the worker's copy of the
/// clone's repository (<see cref="JobWorkspace.GitDir"/>) with the agent's checkout as its work tree, so nothing the
/// agent wrote into <c>repo/.git</c> is ever read by git on the host; commits the agent made itself are folded into
/// the one commit on top of <see cref="JobWorkspace.BaseCommit"/>.
/// </summary>
public sealed partial class WorkspaceManager
{
    private const int MaxListedFiles = 200;

    /// <summary>
    /// Stages the workspace's final state and writes the diff against the base commit to <paramref name="diffFile"/>
    /// (<c>git diff --binary</c>: <c>git apply</c> reproduces it). Nested repositories the agent made are left out.
    /// </summary>
    public async Task<DiffStat> DiffAsync(JobWorkspace workspace, string diffFile, CancellationToken cancellationToken)
    {
        ExcludeNestedRepositories(workspace);
        await _git.GitAsync(OnCopy(workspace, "add", "--all"), cancellationToken).ConfigureAwait(false);
        string[] diff = ["diff", "--cached", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"];
        // One run gives both: a line per file, then the summary line (" 3 files changed, …"), absent when nothing changed.
        var lines = await _git.GitAsync(OnCopy(workspace, [.. diff, "--numstat", "--shortstat", workspace.BaseCommit, "--"]), cancellationToken).ConfigureAwait(false);
        var shortStat = lines.LastOrDefault(l => l.StartsWith(' ')) ?? "";
        var stat = DiffStat.Parse(shortStat, [.. lines.Where(l => l.Length > 0 && !l.StartsWith(' '))], MaxListedFiles);
        // Most runs of audit agents change nothing: no second git run for an empty diff.
        if (stat.FilesChanged == 0)
            await File.WriteAllBytesAsync(diffFile, [], cancellationToken).ConfigureAwait(false);
        else
            await _git.GitAsync(OnCopy(workspace, [.. diff, "--binary", "--full-index", $"--output={diffFile}", workspace.BaseCommit, "--"]), cancellationToken).ConfigureAwait(false);
        return stat;
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

    private static GitCall OnCopy(JobWorkspace workspace, params string[] args) =>
        new(workspace.Root, workspace.Root, args) { GitDir = workspace.GitDir, WorkTree = workspace.RepoDir };

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
    private static void ExcludeNestedRepositories(JobWorkspace workspace)
    {
        var lines = new StringBuilder();
        foreach (var entry in SafeTree.Entries(workspace.RepoDir))
        {
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
