using System.Collections.Concurrent;
using System.Text;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Tests.Workspace;

/// <summary>
/// The clone cache with real git: a bare remote that gets pushed to between jobs, and workspaces cloned through the
/// mirror. Every test also checks that the mirror was actually used, since a failing mirror silently falls back to the
/// remote (and would pass any content check).
/// </summary>
public sealed class MirrorCacheTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-cache");
    private readonly TestRepository _source = TestRepository.Create(new Dictionary<string, string> { ["a.txt"] = "one\n", ["src/b.txt"] = "b\n" });
    private readonly RecordingLogger _log = new();

    public MirrorCacheTests()
    {
        TestRepository.Git(_dir.Path, "clone", "--bare", "--quiet", _source.Path, Remote);
    }

    private string Remote => _dir.Combine("remote.git");
    private string CacheDir => _dir.Combine("cache");

    private WorkspaceManager Manager(string? token = null, int? localReaderUid = null, string? cacheDir = null) => new(
        new WorkspaceOptions { WorkDir = _dir.Combine("work"), GitToken = token, CloneCache = new CloneCacheOptions { Dir = cacheDir ?? CacheDir }, LocalReaderUid = localReaderUid },
        new ProcessRunner(TimeProvider.System),
        _log);

    private static JobSpec Job(RepoRef repo) => new() { Id = $"job-{Guid.NewGuid():N}", Repo = repo };

    private string Mirror => Path.Combine(CacheDir, MirrorCache.Key(Remote) + ".git");

    /// <summary>Commits in the source repository and pushes to the bare remote; returns the commit.</summary>
    private string Push(string branch, string file, string content)
    {
        if (TestRepository.Git(_source.Path, "branch", "--list", branch).Length == 0)
            _source.CreateBranch(branch);
        _source.Checkout(branch);
        var commit = _source.Commit(new Dictionary<string, string> { [file] = content }, $"{file} on {branch}");
        TestRepository.Git(_source.Path, "push", "--quiet", Remote, branch);
        _source.Checkout("main");
        return commit;
    }

    private static string Head(string repo) => TestRepository.Git(repo, "rev-parse", "HEAD").Trim();

    private void AssertCacheUsed() => Assert.DoesNotContain(_log.Entries, e => e.Contains("Clone cache not used", StringComparison.Ordinal));

    [Fact]
    public async Task CreateAsync_RootWorkerWithAPrivateCache_ReadsTheRemoteAsTheSandboxUser_AndItsOwnMirrorAsItself()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");
        // The data directory of a real install is private: the sandbox user reads the job's repository, never the mirror.
        var data = _dir.Combine("private-data");
        Directory.CreateDirectory(data);
        File.SetUnixFileMode(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var manager = Manager(localReaderUid: 65534, cacheDir: Path.Combine(data, "clone-cache"));
        var commit = Push("main", "a.txt", "two\n");

        foreach (var repo in new[] { new RepoRef(Remote), new RepoRef(Remote, Branch: "main"), new RepoRef(Remote, Commit: commit) })
        {
            using var workspace = await manager.CreateAsync(Job(repo), CancellationToken.None);
            Assert.Equal("two\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
        }
        AssertCacheUsed();
    }

    [Fact]
    public async Task CreateAsync_RepeatClone_ComesFromTheMirrorAndOwnsItsObjects()
    {
        var manager = Manager();
        using (await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }
        using var workspace = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None);
        AssertCacheUsed();
        Assert.True(File.Exists(Path.Combine(Mirror, "HEAD")), "the mirror exists");

        // The workspace must outlive its mirror (a sweeper may remove it while an agent works).
        Directory.Delete(Mirror, recursive: true);
        Assert.False(File.Exists(Path.Combine(workspace.RepoDir, ".git", "objects", "info", "alternates")));
        TestRepository.Git(workspace.RepoDir, "fsck", "--strict");
        Assert.Equal("one\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
        Assert.Equal(Head(Remote), Head(workspace.RepoDir));
        Assert.Equal("1", TestRepository.Git(workspace.RepoDir, "rev-list", "--count", "HEAD").Trim());
        Assert.Equal("main", TestRepository.Git(workspace.RepoDir, "rev-parse", "--abbrev-ref", "HEAD").Trim());
        Assert.Equal(new Uri(Remote).AbsoluteUri, TestRepository.Git(workspace.RepoDir, "remote", "get-url", "origin").Trim());
    }

    [Fact]
    public async Task CreateAsync_CommitPushedBetweenJobs_SecondJobHasIt()
    {
        var manager = Manager();
        using (var first = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
            Assert.Equal("one\n", File.ReadAllText(Path.Combine(first.RepoDir, "a.txt")));

        var pushed = Push("main", "a.txt", "two\n");
        using var second = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None);

        AssertCacheUsed();
        Assert.Equal(pushed, Head(second.RepoDir));
        Assert.Equal("two\n", File.ReadAllText(Path.Combine(second.RepoDir, "a.txt")));
        Assert.Equal(pushed, TestRepository.Git(Mirror, "rev-parse", "refs/heads/main").Trim());
    }

    [Fact]
    public async Task CreateAsync_BranchCreatedAfterTheMirror_IsCheckedOut()
    {
        var manager = Manager();
        using (await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }
        var pushed = Push("feature", "f.txt", "feature\n");

        using var workspace = await manager.CreateAsync(Job(new RepoRef(Remote, Branch: "feature")), CancellationToken.None);

        AssertCacheUsed();
        Assert.Equal(pushed, Head(workspace.RepoDir));
        Assert.Equal("feature", TestRepository.Git(workspace.RepoDir, "rev-parse", "--abbrev-ref", "HEAD").Trim());
        Assert.Equal("feature\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "f.txt")));
    }

    [Fact]
    public async Task CreateAsync_BranchDeletedOnTheRemote_IsPrunedFromTheMirrorAndRefused()
    {
        var manager = Manager();
        Push("old", "o.txt", "old\n");
        using (await manager.CreateAsync(Job(new RepoRef(Remote, Branch: "old")), CancellationToken.None))
        {
        }
        TestRepository.Git(Remote, "branch", "-D", "old");

        await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(new RepoRef(Remote, Branch: "old")), CancellationToken.None));

        Assert.DoesNotContain("refs/heads/old", TestRepository.Git(Mirror, "for-each-ref"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateAsync_RemoteDefaultBranchChanged_ChecksOutTheNewDefault()
    {
        var manager = Manager();
        using (await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }
        var pushed = Push("trunk", "t.txt", "trunk\n");
        TestRepository.Git(Remote, "symbolic-ref", "HEAD", "refs/heads/trunk");

        using var workspace = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None);

        AssertCacheUsed();
        Assert.Equal(pushed, Head(workspace.RepoDir));
        Assert.Equal("trunk", TestRepository.Git(workspace.RepoDir, "rev-parse", "--abbrev-ref", "HEAD").Trim());
    }

    [Fact]
    public async Task CreateAsync_OlderCommit_ChecksOutExactlyThatCommitShallowAndSelfContained()
    {
        var first = Head(Remote);
        Push("main", "a.txt", "later\n");

        using var workspace = await Manager().CreateAsync(Job(new RepoRef(Remote, Commit: first)), CancellationToken.None);

        AssertCacheUsed();
        Assert.Equal(first, Head(workspace.RepoDir));
        Assert.Equal("one\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
        Assert.Equal("1", TestRepository.Git(workspace.RepoDir, "rev-list", "--count", "HEAD").Trim());
        Assert.False(File.Exists(Path.Combine(workspace.RepoDir, ".git", "objects", "info", "alternates")));
        Directory.Delete(Mirror, recursive: true);
        TestRepository.Git(workspace.RepoDir, "fsck", "--strict");
    }

    [Fact]
    public async Task CreateAsync_ConcurrentClonesFromTwoWorkers_AllGetTheRemoteHead()
    {
        // Two managers share nothing in memory, like two worker processes sharing the cache directory.
        WorkspaceManager[] workers = [Manager(), Manager()];
        for (var round = 0; round < 2; round++)
        {
            var expected = round == 0 ? Head(Remote) : Push("main", "a.txt", "round two\n");
            var workspaces = await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
                Task.Run(() => workers[i % 2].CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))));
            try
            {
                Assert.All(workspaces, w => Assert.Equal(expected, Head(w.RepoDir)));
                Assert.All(workspaces, w => TestRepository.Git(w.RepoDir, "fsck"));
            }
            finally
            {
                foreach (var workspace in workspaces)
                    workspace.Dispose();
            }
        }
        AssertCacheUsed();
        Assert.Single(Directory.EnumerateDirectories(CacheDir));
    }

    [Fact]
    public async Task CreateAsync_ManyPacksInTheMirror_MergedByTheNextJob()
    {
        // Enough history for 20 objects (each commit adds a commit, a tree and a blob).
        for (var i = 0; i < 8; i++)
            Push("main", $"file{i}.txt", $"{i}\n");
        var manager = Manager();
        using (await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }
        // Packs as fetches leave them, one object each.
        var packDir = Path.Combine(Mirror, "objects", "pack");
        var objects = TestRepository.Git(Mirror, "rev-list", "--objects", "--all").Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(20).ToList();
        foreach (var line in objects)
            GitWithInput(Mirror, line.Split(' ')[0] + "\n", "pack-objects", "-q", Path.Combine(packDir, "pack"));
        Assert.True(Directory.GetFiles(packDir, "*.pack").Length > 16);

        using var workspace = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None);

        AssertCacheUsed();
        Assert.InRange(Directory.GetFiles(packDir, "*.pack").Length, 1, 4);
        Assert.Equal(Head(Remote), Head(workspace.RepoDir));
        TestRepository.Git(Mirror, "fsck", "--no-dangling");
    }

    private static void GitWithInput(string directory, string input, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardInput = true, RedirectStandardOutput = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var git = System.Diagnostics.Process.Start(start)!;
        git.StandardInput.Write(input);
        git.StandardInput.Close();
        git.StandardOutput.ReadToEnd();
        git.WaitForExit();
        Assert.Equal(0, git.ExitCode);
    }

    [Fact]
    public async Task CreateAsync_WithToken_TokenIsNowhereInTheCache()
    {
        const string Token = "ghp_cache_token_never_stored_0123456789";

        using (await Manager(Token).CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }

        AssertCacheUsed();
        var files = SafeTree.Entries(CacheDir).OfType<FileInfo>().ToList();
        Assert.NotEmpty(files);
        Assert.DoesNotContain(files, f => Encoding.Latin1.GetString(File.ReadAllBytes(f.FullName)).Contains(Token, StringComparison.Ordinal));
        var config = File.ReadAllText(Path.Combine(Mirror, "config"));
        Assert.DoesNotContain("credential", config, StringComparison.Ordinal);
        Assert.DoesNotContain("url", config, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateAsync_TokenIsNotOfferedToOtherHostsThroughTheCache()
    {
        const string Token = "ghp_test_token_never_sent_0123456789";
        using var server = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        server.Start();
        var port = ((System.Net.IPEndPoint)server.LocalEndpoint).Port;
        var requests = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var serving = WorkspaceManagerTests.AnswerUnauthorizedAsync(server, requests, stop.Token);

        await Assert.ThrowsAsync<WorkspaceException>(() => Manager(Token).CreateAsync(Job(new RepoRef($"http://127.0.0.1:{port}/repo.git")), CancellationToken.None));
        await stop.CancelAsync();
        await serving;

        Assert.NotEmpty(requests);
        var encoded = Convert.ToBase64String(Encoding.ASCII.GetBytes($"x-access-token:{Token}"));
        Assert.DoesNotContain(requests, r => r.Contains(encoded, StringComparison.Ordinal) || r.Contains(Token, StringComparison.Ordinal));
    }

    [Fact]
    public async Task CreateAsync_BrokenMirror_FallsBackToTheRemote()
    {
        var manager = Manager();
        using (await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None))
        {
        }
        // (Missing objects the next fetch repairs by itself; a config git cannot read it cannot.)
        File.WriteAllText(Path.Combine(Mirror, "config"), "[broken\n");

        using var workspace = await manager.CreateAsync(Job(new RepoRef(Remote)), CancellationToken.None);

        Assert.Contains(_log.Entries, e => e.Contains("Clone cache not used", StringComparison.Ordinal));
        Assert.Equal(Head(Remote), Head(workspace.RepoDir));
        TestRepository.Git(workspace.RepoDir, "fsck");
    }

    [Fact]
    public async Task CreateAsync_MissingRepository_FailsWithTheCloneErrorAndLeavesNoWorkspace()
    {
        var e = await Assert.ThrowsAsync<WorkspaceException>(() => Manager().CreateAsync(Job(new RepoRef(_dir.Combine("nope"))), CancellationToken.None));

        Assert.False(e.Permanent);
        Assert.Contains("git clone failed", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateDirectories(_dir.Combine("work")));
    }

    [Fact]
    public async Task Sweep_RemovesUnusedAndOverSizeMirrors_NeverOneInUse()
    {
        var now = DateTime.UtcNow;
        var cache = new MirrorCache(new CloneCacheOptions { Dir = CacheDir, MaxAge = TimeSpan.FromDays(1), MaxBytes = 1 }, null!, _log);
        Directory.CreateDirectory(CacheDir);
        string Entry(string key, TimeSpan age)
        {
            var mirror = Path.Combine(CacheDir, key + ".git");
            Directory.CreateDirectory(Path.Combine(mirror, "objects"));
            File.WriteAllText(Path.Combine(mirror, "objects", "pack"), new string('x', 100));
            File.WriteAllText(Path.Combine(CacheDir, key + ".lock"), "");
            File.SetLastWriteTimeUtc(Path.Combine(CacheDir, key + ".lock"), now - age);
            return mirror;
        }
        var stale = Entry("stale", TimeSpan.FromDays(3));
        var busy = Entry("busy", TimeSpan.FromDays(2));
        var older = Entry("older", TimeSpan.FromHours(2));
        var newest = Entry("newest", TimeSpan.FromHours(1));
        Directory.CreateDirectory(Path.Combine(CacheDir, "x.git.removing-abc"));
        using var reader = FileLock.TryAcquire(Path.Combine(CacheDir, "busy.lock"), exclusive: false, create: false);

        // Over the (1 byte) cap, everything not in use goes, oldest first; the one being read stays.
        Assert.Equal(3, cache.Sweep(now));

        Assert.False(Directory.Exists(stale));
        Assert.False(Directory.Exists(older));
        Assert.False(Directory.Exists(newest));
        Assert.True(Directory.Exists(busy));
        Assert.Equal(["busy.git", "busy.lock"], Directory.EnumerateFileSystemEntries(CacheDir).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Sweep_UnderSizeAndRecentlyUsed_KeepsEverything()
    {
        var cache = new MirrorCache(new CloneCacheOptions { Dir = CacheDir }, null!, _log);
        Directory.CreateDirectory(Path.Combine(CacheDir, "k.git"));
        File.WriteAllText(Path.Combine(CacheDir, "k.lock"), "");
        File.SetLastWriteTimeUtc(Path.Combine(CacheDir, "k.lock"), DateTime.UtcNow - TimeSpan.FromDays(6));

        Assert.Equal(0, cache.Sweep(DateTime.UtcNow));
        Assert.Equal(1, cache.Sweep(DateTime.UtcNow + TimeSpan.FromDays(2)));
    }

    [Fact]
    public void Key_IgnoresCredentialsButNotThePath()
    {
        Assert.Equal(MirrorCache.Key("https://git.example/a/b.git"), MirrorCache.Key("https://u:secret@git.example/a/b.git"));
        Assert.Equal(MirrorCache.Key("https://git.example/a/b.git"), MirrorCache.Key("https://u@git.example/a/b.git"));
        Assert.NotEqual(MirrorCache.Key("https://git.example/a/b.git"), MirrorCache.Key("https://git.example/a/c.git"));
        Assert.Equal(MirrorCache.Key("/srv/repo"), MirrorCache.Key("file:///srv/repo"));
        Assert.Matches("^[0-9a-f]{32}$", MirrorCache.Key("git@git.example:a/b.git"));
    }

    public void Dispose()
    {
        _source.Dispose();
        _dir.Dispose();
    }

    private sealed class RecordingLogger : ILogger<WorkspaceManager>
    {
        public ConcurrentQueue<string> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue(formatter(state, exception));
    }
}
