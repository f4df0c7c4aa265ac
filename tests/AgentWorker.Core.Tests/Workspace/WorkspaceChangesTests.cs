using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Core.Tests.Workspace;

/// <summary>Diff, commit and push of a workspace, against real git repositories (a bare one as the remote).</summary>
public sealed class WorkspaceChangesTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-changes");
    private readonly TestRepository _source = TestRepository.Create(new Dictionary<string, string> { ["a.txt"] = "one\ntwo\n", ["b.txt"] = "b\n" });
    private readonly BareRepository _remote;

    public WorkspaceChangesTests() => _remote = BareRepository.From(_source);

    private const long MaxDiffBytes = 1L << 30;

    private string DiffFile => _dir.Combine("diff.patch");

    private WorkspaceManager Manager() => new(
        new WorkspaceOptions { WorkDir = _dir.Combine("work"), CommitAuthorName = "Bot Author", CommitAuthorEmail = "bot@example.invalid" },
        new ProcessRunner(TimeProvider.System),
        NullLogger<WorkspaceManager>.Instance);

    private JobSpec Job(string? branch = "main", bool createBranch = false, JobMode mode = JobMode.Apply) =>
        new() { Id = "job-1", Repo = new RepoRef(_remote.Path, branch), Mode = mode, CreateBranch = createBranch };

    private static void Write(JobWorkspace workspace, string file, string text)
    {
        var path = Path.Combine(workspace.RepoDir, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public async Task DiffAsync_EditedAddedAndDeletedFiles_WritesApplicableDiffAndStat()
    {
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        Write(workspace, "a.txt", "one\n2\nthree\n");
        Write(workspace, "new/c.txt", "c\n");
        File.Delete(Path.Combine(workspace.RepoDir, "b.txt"));

        var (stat, _) = await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);

        Assert.Equal((3, 3, 2), (stat.FilesChanged, stat.Insertions, stat.Deletions));
        Assert.Equal(["a.txt", "b.txt", "new/c.txt"], stat.Files.Select(f => f.Path).Order(StringComparer.Ordinal));
        // The diff reproduces the agent's tree on a clean checkout of the base commit.
        var check = _dir.Combine("check");
        TestRepository.Git(_dir.Path, "clone", "--quiet", _remote.Path, check);
        TestRepository.Git(check, "apply", "--index", DiffFile);
        Assert.Equal("one\n2\nthree\n", File.ReadAllText(Path.Combine(check, "a.txt")));
        Assert.False(File.Exists(Path.Combine(check, "b.txt")));
        Assert.Equal("c\n", File.ReadAllText(Path.Combine(check, "new", "c.txt")));
    }

    [Fact]
    public async Task DiffAsync_LargerThanItsLimit_IsCutAtALineWithAMarker_StatStillComplete()
    {
        const long Limit = 64 * 1024;
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        Write(workspace, "big.txt", string.Concat(Enumerable.Range(0, 20_000).Select(i => $"line {i}\n")));

        var (stat, truncated) = await manager.DiffAsync(workspace, DiffFile, Limit, CancellationToken.None);

        Assert.True(truncated);
        Assert.Equal((1, 20_000), (stat.FilesChanged, stat.Insertions));
        var bytes = File.ReadAllBytes(DiffFile);
        Assert.InRange(bytes.Length, Limit - 1024, Limit);
        Assert.EndsWith("\n" + WorkspaceManager.TruncatedMarker + "\n", File.ReadAllText(DiffFile), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiffAsync_ThousandsOfChangedFiles_CountsEveryOneListsTheFirst()
    {
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        // Their --numstat lines are longer than git output the worker keeps (256 KiB).
        var name = new string('n', 200);
        for (var i = 0; i < 3000; i++)
            Write(workspace, $"d/{name}{i}.txt", "x\n");

        var (stat, truncated) = await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);

        Assert.False(truncated);
        Assert.Equal((3000, 3000, 200, true), (stat.FilesChanged, stat.Insertions, stat.Files.Count, stat.FilesTruncated));
    }

    [Fact]
    public async Task DiffAsync_AgentRewroteItsGitConfig_NothingOfItRunsOnTheHost()
    {
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        var marker = _dir.Combine("pwned");
        // Each of these would make host git run a command if it read the agent's repository.
        File.AppendAllText(Path.Combine(workspace.RepoDir, ".git", "config"), $"""
            [core]
                fsmonitor = "touch {marker}-fsmonitor"
                hooksPath = /tmp
            [filter "x"]
                clean = "touch {marker}-filter"
            [diff "x"]
                command = "touch {marker}-diff"
                textconv = "touch {marker}-textconv"
            """);
        Write(workspace, ".gitattributes", "* filter=x diff=x\n");
        Write(workspace, "a.txt", "changed\n");

        var (stat, _) = await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);
        await manager.CommitAsync(workspace, "m", CancellationToken.None);

        Assert.Empty(Directory.EnumerateFiles(_dir.Path, "pwned*"));
        Assert.Equal(2, stat.FilesChanged);
        Assert.Contains("+changed", File.ReadAllText(DiffFile), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiffAsync_NestedRepositories_AreLeftOutInsteadOfRead()
    {
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        var nested = Path.Combine(workspace.RepoDir, "vendor", "lib");
        Directory.CreateDirectory(nested);
        TestRepository.Git(nested, "init", "--quiet");
        Write(workspace, "vendor/lib/x.txt", "x\n");
        // A .git file may point anywhere on the host.
        Write(workspace, "elsewhere/.git", "gitdir: /etc\n");
        Write(workspace, "elsewhere/y.txt", "y\n");
        Write(workspace, "kept.txt", "k\n");

        var (stat, _) = await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);

        Assert.Equal(["kept.txt"], stat.Files.Select(f => f.Path));
    }

    [Fact]
    public async Task CommitAndPush_ExistingBranch_AdvancesTheRemoteWithTheConfiguredAuthor()
    {
        var manager = Manager();
        var before = _remote.Head("main");
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        Write(workspace, "a.txt", "agent\n");
        await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);

        var commit = await manager.CommitAsync(workspace, "Agent change", CancellationToken.None);
        await manager.PushAsync(workspace, Job().Repo, "main", commit, CancellationToken.None);

        Assert.Equal(before, workspace.BaseCommit);
        Assert.Equal(commit, _remote.Head("main"));
        Assert.Equal("agent\n", _remote.Show("main", "a.txt"));
        Assert.Equal($"Bot Author <bot@example.invalid>|{before}|Agent change", _remote.Log("main", "%an <%ae>|%P|%s"));
    }

    [Fact]
    public async Task PushAsync_BranchMovedSinceTheClone_IsRefusedAndTheRemoteKeepsItsCommit()
    {
        var manager = Manager();
        using var workspace = await manager.CreateAsync(Job(), CancellationToken.None);
        Write(workspace, "a.txt", "agent\n");
        await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);
        var commit = await manager.CommitAsync(workspace, "Agent change", CancellationToken.None);
        // Someone else pushes meanwhile.
        _source.Commit(new Dictionary<string, string> { ["a.txt"] = "human\n" }, "human");
        TestRepository.Git(_source.Path, "push", "--quiet", _remote.Path, "main");
        var moved = _remote.Head("main");

        var error = await Assert.ThrowsAsync<WorkspaceException>(() => manager.PushAsync(workspace, Job().Repo, "main", commit, CancellationToken.None));

        Assert.Contains("moved on the remote", error.Message, StringComparison.Ordinal);
        Assert.Equal(moved, _remote.Head("main"));
    }

    [Fact]
    public async Task CreateBranch_MissingBranch_StartsFromDefaultAndCreatesIt()
    {
        var manager = Manager();
        var job = Job("agent/fix", createBranch: true);
        using var workspace = await manager.CreateAsync(job, CancellationToken.None);
        Assert.False(workspace.BranchExists);
        Assert.Equal(_remote.Head("main"), workspace.BaseCommit);
        Write(workspace, "a.txt", "fixed\n");
        await manager.DiffAsync(workspace, DiffFile, MaxDiffBytes, CancellationToken.None);
        var commit = await manager.CommitAsync(workspace, "Fix", CancellationToken.None);

        await manager.PushAsync(workspace, job.Repo, "agent/fix", commit, CancellationToken.None);

        Assert.Equal(commit, _remote.Head("agent/fix"));
        Assert.Equal(workspace.BaseCommit, _remote.Head("main"));
    }

    [Fact]
    public async Task CreateBranch_ExistingBranch_ContinuesFromIt()
    {
        _source.CreateBranch("agent/fix");
        _source.Checkout("agent/fix");
        var tip = _source.Commit(new Dictionary<string, string> { ["a.txt"] = "earlier run\n" }, "earlier run");
        TestRepository.Git(_source.Path, "push", "--quiet", _remote.Path, "agent/fix");

        using var workspace = await Manager().CreateAsync(Job("agent/fix", createBranch: true), CancellationToken.None);

        Assert.True(workspace.BranchExists);
        Assert.Equal(tip, workspace.BaseCommit);
    }

    public void Dispose()
    {
        _remote.Dispose();
        _source.Dispose();
        _dir.Dispose();
    }
}
