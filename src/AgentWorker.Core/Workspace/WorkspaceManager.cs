using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Creates one directory per attempt under WORK_DIR (<c>&lt;job-id&gt;-&lt;random&gt;</c>) holding the clone,
/// a private HOME for the agent, the sandbox's own files, and a lock file held for the attempt's lifetime. The lock is an
/// OS file lock, so it vanishes with a crashed worker: a directory whose lock can be taken is stale and swept.
/// With <see cref="WorkspaceOptions.CloneCache"/> set, clones come from a local mirror (<see cref="MirrorCache"/>);
/// if that fails for any reason, the clone is made from the remote as without the cache.
/// </summary>
public sealed partial class WorkspaceManager(WorkspaceOptions options, ProcessRunner runner, ILogger<WorkspaceManager> logger)
{
    internal const string LockName = ".agent-worker.lock";

    /// <summary>The error of an attempt whose workspace could not be written for a full WORK_DIR (the path is in the worker's log).</summary>
    public const string OutOfSpace = "no space left on the device of WORK_DIR (the worker's log names it)";

    // ENOSPC and EDQUOT, the errno .NET puts in an IOException's HResult on Linux.
    private const int NoSpaceErrno = 28;
    private const int QuotaErrno = 122;

    // A failed git does not say why in a way to rely on; a device with less than this free after the failure was full.
    private const long NearlyFullBytes = 1024 * 1024;

    /// <summary>The artifacts folder of a job without a repository, relative to its working directory.</summary>
    public const string EmptyWorkspaceArtifacts = "screenshots";
    // How long a directory without a lock may be one being made (between its mkdir and its lock, or between removing the
    // lock and the directory): microseconds when the worker is alive. Short, so the directory of a worker killed in that
    // window goes with the next janitor round, not minutes later.
    private static readonly TimeSpan UnlockedGrace = TimeSpan.FromSeconds(5);
    private readonly GitClient _git = new(options, runner);
    private readonly MirrorCache? _cache = options.CloneCache is { } cache ? new MirrorCache(cache, new GitClient(options, runner), logger) : null;

    public string WorkDir => options.WorkDir;

    public async Task<JobWorkspace> CreateAsync(JobSpec job, CancellationToken cancellationToken)
    {
        // A job without a repository (tasks table) gets a fresh directory whose screenshots/ is its artifacts folder, as the
        // seed's run_task.py expects; a clone keeps its artifacts beside the repository, out of what apply mode commits.
        if (!job.Repo.IsEmpty && LocalRepositories.Refusal(job.Repo.Url, options) is { } refusal)
            throw new WorkspaceException(refusal, permanent: true);
        JobWorkspace? workspace = null;
        try
        {
            workspace = Open(job.Id, artifactsInRepo: job.Repo.IsEmpty);
            Directory.CreateDirectory(workspace.HomeDir);
            Directory.CreateDirectory(workspace.RepoDir);
            Directory.CreateDirectory(workspace.ArtifactsDir);
            if (options.RunFilesystem is { } capped)
                MountCapped(workspace, capped, artifactsInRepo: job.Repo.IsEmpty);
            if (!job.Repo.IsEmpty)
            {
                var repo = job.Repo;
                // A branch to be created does not exist yet: start from the commit, else the remote's default branch.
                if (job.Mode == JobMode.Apply && job.CreateBranch && repo.Branch is { } branch
                    && !await _git.RemoteHasBranchAsync(repo.Url, branch, workspace.HomeDir, cancellationToken).ConfigureAwait(false))
                {
                    workspace.BranchExists = false;
                    repo = repo with { Branch = null };
                }
                await CloneAsync(job.Id, repo, workspace, cancellationToken).ConfigureAwait(false);
            }
            Directory.CreateDirectory(workspace.ArtifactsDir);
            CheckLimits(workspace.RepoDir);
            if (!job.Repo.IsEmpty)
                workspace.BaseCommit = await SnapshotAsync(workspace, cancellationToken).ConfigureAwait(false);
            return workspace;
        }
        catch (Exception e)
        {
            // Asked before the partial clone is removed, which may free enough to hide that the disk was full.
            var outOfSpace = e is IOException or WorkspaceException && IsOutOfSpace(e);
            workspace?.Dispose();
            if (outOfSpace)
            {
                // The worker's paths stay in its own log: the job's error is read by API clients.
                LogOutOfSpace(logger, job.Id, options.WorkDir, e.Message);
                throw new WorkspaceException(OutOfSpace, permanent: false);
            }
            throw;
        }
    }

    /// <summary>The clone, the home and (beside the clone) the artifacts folder each get a tmpfs of their own cap.</summary>
    private void MountCapped(JobWorkspace workspace, RunFilesystemOptions capped, bool artifactsInRepo)
    {
        // Directories count as inodes too; twice the file limit leaves room for any real tree.
        workspace.Mount(workspace.RepoDir, options.MaxRepoBytes, 2L * options.MaxRepoFiles + 1024, "workspace", "MAX_REPO_SIZE_MB");
        workspace.Mount(workspace.HomeDir, capped.HomeBytes, 100_000, "home directory", "SANDBOX_HOME_MB");
        if (!artifactsInRepo)
            workspace.Mount(workspace.ArtifactsDir, capped.ArtifactBytes, 10_000, "artifacts folder", "MAX_ARTIFACT_MB");
    }

    /// <summary>
    /// Throws a permanent <see cref="WorkspaceException"/> naming the tree and its setting when the agent used up a capped
    /// tree: what it wrote past the cap was lost (ENOSPC), so the run's result cannot be trusted.
    /// </summary>
    public static void CheckFilled(JobWorkspace workspace)
    {
        foreach (var tree in workspace.CappedTrees.Where(t => RunFilesystem.IsFull(t.Path)))
            throw new WorkspaceException($"the agent filled its {tree.Name}: the {tree.Bytes / (1024 * 1024)} MiB cap ({tree.Setting}) is used up and writes past it failed", permanent: true);
    }

    private bool IsOutOfSpace(Exception e)
    {
        if (e is IOException { HResult: NoSpaceErrno or QuotaErrno })
            return true;
        try
        {
            return new DriveInfo(options.WorkDir).AvailableFreeSpace < NearlyFullBytes;
        }
        catch (Exception probe) when (probe is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return false;
        }
    }

    private async Task CloneAsync(string jobId, RepoRef repo, JobWorkspace workspace, CancellationToken cancellationToken)
    {
        if (_cache is not null)
        {
            try
            {
                await _cache.CloneAsync(repo, workspace.RepoDir, workspace.HomeDir, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (e is WorkspaceException or IOException or UnauthorizedAccessException && !cancellationToken.IsCancellationRequested)
            {
                // The remote has the last word: a broken mirror, a full disk or a commit only the remote has must not fail the job.
                LogCacheMissed(logger, jobId, e.Message);
                // Emptied, not removed: it may be the attempt's mount point.
                foreach (var entry in Directory.EnumerateFileSystemEntries(workspace.RepoDir))
                    SafeTree.Delete(entry);
            }
        }
        await _git.CloneAsync(repo, workspace.RepoDir, workspace.HomeDir, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A directory like a job's but with an empty <see cref="JobWorkspace.RepoDir"/> instead of a clone (tool runs); swept the same way.</summary>
    public JobWorkspace CreateEmpty(string id)
    {
        var workspace = Open(id);
        Directory.CreateDirectory(workspace.HomeDir);
        Directory.CreateDirectory(workspace.RepoDir);
        return workspace;
    }

    private JobWorkspace Open(string id, bool artifactsInRepo = false)
    {
        Directory.CreateDirectory(options.WorkDir);
        var root = Path.Combine(options.WorkDir, $"{SafeName(id)}-{Path.GetRandomFileName().Replace(".", "", StringComparison.Ordinal)}");
        Directory.CreateDirectory(root);
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(Path.Combine(root, LockName), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            // Without its lock the directory would wait out the sweep's grace period; nothing is in it yet.
            Directory.Delete(root);
            throw;
        }
        return new JobWorkspace(root, lockFile, artifactsInRepo ? Path.Combine(root, "repo", EmptyWorkspaceArtifacts) : Path.Combine(root, "artifacts"));
    }

    /// <summary>
    /// Removes workspaces left behind by workers that died, and (every few minutes) clone cache mirrors unused for too long
    /// or over the cache's size. Returns how many workspaces were removed.
    /// </summary>
    public int SweepStale()
    {
        _cache?.SweepIfDue(DateTime.UtcNow);
        if (!Directory.Exists(options.WorkDir))
            return 0;
        var removed = 0;
        foreach (var dir in Directory.EnumerateDirectories(options.WorkDir))
        {
            var lockPath = Path.Combine(dir, LockName);
            try
            {
                if (!File.Exists(lockPath))
                {
                    // Between mkdir and the lock; only old ones are abandoned.
                    if (DateTime.UtcNow - Directory.GetCreationTimeUtc(dir) < UnlockedGrace)
                        continue;
                    RunFilesystem.UnmountAllUnder(dir);
                    SafeTree.Delete(dir);
                }
                else
                {
                    FileStream held;
                    try
                    {
                        held = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                    }
                    catch (IOException)
                    {
                        // Locked: a live worker owns it.
                        continue;
                    }
                    using (held)
                    {
                        RunFilesystem.UnmountAllUnder(dir);
                        SafeTree.Delete(dir);
                    }
                }
                removed++;
                LogSwept(logger, dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // One bad directory must not stop the worker from starting; it is tried again by the next sweep.
                LogSweepFailed(logger, dir, e.Message);
            }
        }
        return removed;
    }

    /// <summary>Throws a permanent <see cref="WorkspaceException"/> when <paramref name="repoDir"/> is over the size or file-count limit.</summary>
    public void CheckLimits(string repoDir)
    {
        long bytes = 0;
        var files = 0;
        foreach (var file in SafeTree.Entries(repoDir).OfType<FileInfo>())
        {
            bytes += file.LinkTarget is null ? file.Length : 0;
            if (++files > options.MaxRepoFiles)
                throw new WorkspaceException($"repository has more than {options.MaxRepoFiles} files (MAX_REPO_FILES)", permanent: true);
            if (bytes > options.MaxRepoBytes)
                throw new WorkspaceException($"repository is larger than {options.MaxRepoBytes / (1024 * 1024)} MiB (MAX_REPO_SIZE_MB)", permanent: true);
        }
    }

    private static string SafeName(string id)
    {
        var chars = id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray();
        return new string(chars, 0, Math.Min(chars.Length, 64));
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId}: no space left on the device of WORK_DIR {WorkDir}: {Reason}")]
    private static partial void LogOutOfSpace(ILogger logger, string jobId, string workDir, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Clone cache not used for job {JobId}, cloning from the remote: {Reason}")]
    private static partial void LogCacheMissed(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed stale workspace {Path}")]
    private static partial void LogSwept(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not remove stale workspace {Path}: {Reason}")]
    private static partial void LogSweepFailed(ILogger logger, string path, string reason);
}

/// <summary>A job attempt's directory: <see cref="RepoDir"/> is the clone the agent works in. Disposing removes it all.</summary>
public sealed class JobWorkspace(string root, FileStream lockFile, string artifactsDir) : IDisposable
{
    public string Root { get; } = root;
    public string RepoDir => Path.Combine(Root, "repo");
    public string HomeDir => Path.Combine(Root, "home");

    /// <summary>Where the agent leaves files to keep (uploaded to the artifact store after the run).</summary>
    public string ArtifactsDir { get; } = artifactsDir;

    /// <summary>
    /// The worker's copy of the clone's repository, taken before the agent runs and out of its reach: git after the run
    /// reads only this one, never the agent-writable <c>repo/.git</c> (its config could name commands to run).
    /// </summary>
    public string GitDir => Path.Combine(Root, "git");

    /// <summary>The commit the clone checked out.</summary>
    public string BaseCommit { get; internal set; } = "";

    /// <summary>False when an apply-mode job's branch did not exist on the remote yet (it is created by the push).</summary>
    public bool BranchExists { get; internal set; } = true;

    /// <summary>The sandbox's own files for this attempt (stub /etc files); TMPDIR of an unsandboxed run.</summary>
    public string SandboxDir => Path.Combine(Root, "sandbox");

    private readonly List<CappedTree> _capped = [];

    /// <summary>The trees that are size-capped filesystems of their own (none when WORKSPACE_TMPFS is off).</summary>
    public IReadOnlyList<CappedTree> CappedTrees => _capped;

    internal void Mount(string path, long bytes, long inodes, string name, string setting)
    {
        RunFilesystem.Mount(path, bytes, inodes);
        _capped.Add(new CappedTree(path, name, bytes, setting));
    }

    public void Dispose()
    {
        try
        {
            foreach (var tree in _capped)
                RunFilesystem.Unmount(tree.Path);
            _capped.Clear();
            // The lock goes last: a worker killed halfway through leaves a directory whose lock (free once it is dead)
            // marks it stale for the next sweep, not a lock-less one the sweep takes for a workspace being made.
            if (Directory.Exists(Root))
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(Root).Where(entry => Path.GetFileName(entry) != WorkspaceManager.LockName))
                    SafeTree.Delete(entry);
            }
            SafeTree.Delete(Root);
        }
        finally
        {
            lockFile.Dispose();
        }
    }
}

/// <summary>A tree of an attempt on a tmpfs of its own: where, what to call it in a message, its cap and the setting that sets it.</summary>
public sealed record CappedTree(string Path, string Name, long Bytes, string Setting);
