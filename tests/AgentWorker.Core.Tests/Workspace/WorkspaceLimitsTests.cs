using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Core.Tests.Workspace;

/// <summary>
/// Limits that hold before and while an agent runs: the clone measures the tree before checking it out, each attempt's
/// trees are capped tmpfs mounts (root worker), and local repositories are taken only from where the job may read.
/// </summary>
public sealed class WorkspaceLimitsTests : IDisposable
{
    private const long MiB = 1024 * 1024;
    private readonly TempDirectory _dir = new("aw-limits");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["a.txt"] = "a\n", ["src/b.txt"] = "b\n" });

    private string WorkDir => _dir.Combine("work");

    private WorkspaceOptions Options => new() { WorkDir = WorkDir };

    private static WorkspaceManager Manager(WorkspaceOptions options) =>
        new(options, new ProcessRunner(TimeProvider.System), NullLogger<WorkspaceManager>.Instance);

    private static JobSpec Job(string url) => new() { Id = "limits", Repo = new RepoRef(url) };

    [Fact]
    public async Task CreateAsync_TreeLargerThanTheLimit_RefusedWithoutCheckingOut()
    {
        // 3 MiB of one letter packs into a few KiB: only the tree's sizes show what the checkout would write.
        _repo.Commit(new Dictionary<string, string> { ["big.txt"] = new string('x', 3 * (int)MiB) }, "big");
        var manager = Manager(Options with { MaxRepoBytes = 2 * MiB });

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(_repo.Path), CancellationToken.None));

        Assert.True(e.Permanent);
        Assert.Contains("MAX_REPO_SIZE_MB", e.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was checked out", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateDirectories(WorkDir));
    }

    [Fact]
    public async Task CreateAsync_PinnedCommitWithTooManyFiles_RefusedWithoutCheckingOut()
    {
        var commit = _repo.Commit(new Dictionary<string, string> { ["c.txt"] = "c\n", ["d.txt"] = "d\n" }, "more");
        var manager = Manager(Options with { MaxRepoFiles = 3 });

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(new JobSpec { Id = "limits", Repo = new RepoRef(_repo.Path, Commit: commit) }, CancellationToken.None));

        Assert.True(e.Permanent);
        Assert.Contains("MAX_REPO_FILES", e.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was checked out", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateAsync_TreeWithinTheLimits_ChecksOutEveryFile()
    {
        var manager = Manager(Options with { MaxRepoFiles = 100, MaxRepoBytes = 1 * MiB });

        using var workspace = await manager.CreateAsync(Job(_repo.Path), CancellationToken.None);

        Assert.Equal("b\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "src", "b.txt")));
        Assert.Empty(TestRepository.Git(workspace.RepoDir, "status", "--porcelain").Trim());
    }

    [Theory]
    [InlineData("data")]
    [InlineData("data/clone-cache/mirror.git")]
    [InlineData("link-to-data/clone-cache/mirror.git")]
    [InlineData("data/../data/clone-cache")]
    public async Task CreateAsync_RepositoryInTheWorkersOwnDirectories_RefusedWithoutNamingThem(string path)
    {
        var data = _dir.Combine("data");
        Directory.CreateDirectory(Path.Combine(data, "clone-cache"));
        TestRepository.Git(_dir.Path, "clone", "--bare", "--quiet", _repo.Path, Path.Combine(data, "clone-cache", "mirror.git"));
        File.CreateSymbolicLink(_dir.Combine("link-to-data"), data);
        var manager = Manager(Options with { PrivatePaths = [data, WorkDir] });

        foreach (var url in new[] { _dir.Combine(path), new Uri(_dir.Combine(path)).AbsoluteUri })
        {
            var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(url), CancellationToken.None));
            Assert.True(e.Permanent);
            Assert.Contains("worker's own directories", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(_dir.Path, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task CreateAsync_LocalRepoRoots_TakeOnlyRepositoriesUnderThem()
    {
        var manager = Manager(Options with { LocalRepoRoots = [_dir.Combine("allowed")] });

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(_repo.Path), CancellationToken.None));
        Assert.Contains("LOCAL_REPO_ROOTS", e.Message, StringComparison.Ordinal);

        var allowed = Manager(Options with { LocalRepoRoots = [Path.GetDirectoryName(_repo.Path)!] });
        using var workspace = await allowed.CreateAsync(Job(_repo.Path), CancellationToken.None);
        Assert.True(File.Exists(Path.Combine(workspace.RepoDir, "a.txt")));
    }

    [Fact]
    public async Task CreateAsync_RepositoryOnlyRootMayRead_RefusedForTheSandboxUser()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        var hidden = _dir.Combine("rootonly");
        Directory.CreateDirectory(hidden);
        File.SetUnixFileMode(hidden, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var secret = Path.Combine(hidden, "secret.git");
        TestRepository.Git(_dir.Path, "clone", "--bare", "--quiet", _repo.Path, secret);
        var manager = Manager(Options with { LocalReaderUid = 65534 });

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(secret), CancellationToken.None));
        Assert.True(e.Permanent);
        Assert.Contains("not readable by the sandbox user", e.Message, StringComparison.Ordinal);

        // The same repository where the sandbox user may read it is cloned, by that user's upload-pack.
        using var workspace = await manager.CreateAsync(Job(_repo.Path), CancellationToken.None);
        Assert.True(File.Exists(Path.Combine(workspace.RepoDir, "a.txt")));
    }

    [Fact]
    public async Task CreateAsync_ReadableTopButPrivateObjects_FailsAsTheSandboxUser()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        // The name check passes (the directory is readable); only reading as the sandbox user stops the clone.
        var bare = _dir.Combine("private-objects.git");
        TestRepository.Git(_dir.Path, "clone", "--bare", "--quiet", _repo.Path, bare);
        File.SetUnixFileMode(Path.Combine(bare, "objects"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => Manager(Options with { LocalReaderUid = 65534 }).CreateAsync(Job(bare), CancellationToken.None));

        Assert.Contains("git", e.Message, StringComparison.Ordinal);
        using var asRoot = await Manager(Options).CreateAsync(Job(bare), CancellationToken.None);
        Assert.True(File.Exists(Path.Combine(asRoot.RepoDir, "a.txt")), "the repository itself is fine: only the reader's rights differ");
    }

    [Fact]
    public async Task CreateAsync_WithRunFilesystem_EachTreeIsACappedTmpfs_RemovedOnDispose()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        var manager = Manager(Options with { MaxRepoBytes = 4 * MiB, RunFilesystem = new RunFilesystemOptions { HomeBytes = 2 * MiB, ArtifactBytes = 1 * MiB } });
        string root;
        using (var workspace = await manager.CreateAsync(Job(_repo.Path), CancellationToken.None))
        {
            root = workspace.Root;
            Assert.Equal(["workspace", "home directory", "artifacts folder"], workspace.CappedTrees.Select(t => t.Name));
            foreach (var (path, cap) in new[] { (workspace.RepoDir, 4 * MiB), (workspace.HomeDir, 2 * MiB), (workspace.ArtifactsDir, 1 * MiB) })
            {
                Assert.Contains(MountPoints(), m => m == path);
                Assert.Equal(cap, new DriveInfo(path).TotalSize);
            }
            Assert.True(File.Exists(Path.Combine(workspace.RepoDir, "a.txt")));

            WorkspaceManager.CheckFilled(workspace);
            var write = Assert.Throws<IOException>(() => File.WriteAllBytes(Path.Combine(workspace.ArtifactsDir, "big"), new byte[2 * MiB]));
            Assert.Contains("space", write.Message, StringComparison.OrdinalIgnoreCase);
            var filled = Assert.Throws<WorkspaceException>(() => WorkspaceManager.CheckFilled(workspace));
            Assert.True(filled.Permanent);
            Assert.Contains("artifacts folder", filled.Message, StringComparison.Ordinal);
            Assert.Contains("MAX_ARTIFACT_MB", filled.Message, StringComparison.Ordinal);
        }
        Assert.False(Directory.Exists(root));
        Assert.DoesNotContain(MountPoints(), m => m.StartsWith(root, StringComparison.Ordinal));
    }

    [Fact]
    public void SweepStale_WorkspaceOfAKilledWorkerWithMounts_UnmountedAndRemoved()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        // What a killed worker leaves: its tmpfs mounts with files in them, and a lock file nobody holds.
        var stale = Path.Combine(WorkDir, "killed-job-abc");
        foreach (var tree in new[] { "repo", "home" })
        {
            Directory.CreateDirectory(Path.Combine(stale, tree));
            Run("mount", "-t", "tmpfs", "-o", "size=1m", "agent-worker", Path.Combine(stale, tree));
            File.WriteAllText(Path.Combine(stale, tree, "left.txt"), "left behind\n");
        }
        File.WriteAllText(Path.Combine(stale, ".agent-worker.lock"), "");

        Assert.Equal(1, Manager(Options with { RunFilesystem = new RunFilesystemOptions() }).SweepStale());

        Assert.False(Directory.Exists(stale));
        Assert.DoesNotContain(MountPoints(), m => m.StartsWith(stale, StringComparison.Ordinal));
    }

    private static void Run(string program, params string[] args)
    {
        using var process = System.Diagnostics.Process.Start(program, args);
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }

    private static List<string> MountPoints() =>
        [.. File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4])];

    public void Dispose()
    {
        // A failed test may leave its mounts; the directory cannot go while they are there.
        foreach (var mount in MountPoints().Where(m => m.StartsWith(_dir.Path, StringComparison.Ordinal)).OrderByDescending(m => m.Length))
            Run("umount", "-l", mount);
        _repo.Dispose();
        _dir.Dispose();
    }
}
