using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Core.Tests.Workspace;

public sealed class WorkspaceManagerTests : IDisposable
{
    private readonly TempDirectory _work = new("aw-work");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["a.txt"] = "main\n", ["src/b.txt"] = "b\n" });

    private WorkspaceManager Manager(WorkspaceOptions? options = null) =>
        new(options ?? new WorkspaceOptions { WorkDir = _work.Path }, new ProcessRunner(TimeProvider.System), NullLogger<WorkspaceManager>.Instance);

    private static JobSpec Job(RepoRef repo) => new() { Id = "job/1", Repo = repo };

    [Fact]
    public async Task CreateAsync_DefaultBranch_ClonesShallowAndRemovesOnDispose()
    {
        _repo.Commit(new Dictionary<string, string> { ["a.txt"] = "second\n" }, "second");
        string root;
        using (var workspace = await Manager().CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None))
        {
            root = workspace.Root;
            Assert.StartsWith(Path.Combine(_work.Path, "job_1-"), root, StringComparison.Ordinal);
            Assert.Equal("second\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
            Assert.Equal("1", TestRepository.Git(workspace.RepoDir, "rev-list", "--count", "HEAD").Trim());
        }
        Assert.False(Directory.Exists(root));
    }

    [Fact]
    public async Task CreateAsync_Branch_ChecksOutThatBranch()
    {
        _repo.CreateBranch("feature");
        _repo.Checkout("feature");
        _repo.Commit(new Dictionary<string, string> { ["a.txt"] = "feature\n" }, "on feature");
        _repo.Checkout("main");

        using var workspace = await Manager().CreateAsync(Job(new RepoRef(_repo.Path, Branch: "feature")), CancellationToken.None);

        Assert.Equal("feature\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
    }

    [Fact]
    public async Task CreateAsync_Commit_ChecksOutThatCommit()
    {
        var first = TestRepository.Git(_repo.Path, "rev-parse", "HEAD").Trim();
        _repo.Commit(new Dictionary<string, string> { ["a.txt"] = "later\n" }, "later");

        using var workspace = await Manager().CreateAsync(Job(new RepoRef(_repo.Path, Commit: first)), CancellationToken.None);

        Assert.Equal("main\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
        Assert.Equal(first, TestRepository.Git(workspace.RepoDir, "rev-parse", "HEAD").Trim());
    }

    [Fact]
    public async Task CreateAsync_MissingRepository_FailsRetryablyAndLeavesNothing()
    {
        var e = await Assert.ThrowsAsync<WorkspaceException>(() => Manager().CreateAsync(Job(new RepoRef(_work.Combine("nope"))), CancellationToken.None));

        Assert.False(e.Permanent);
        Assert.Contains("git clone failed", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateDirectories(_work.Path));
    }

    [Fact]
    public async Task CreateAsync_WorkDirOutOfSpace_FailsRetryablyNamingTheCause_AndWorksOnceSpaceIsBack()
    {
        using var disk = TmpfsMount.Create(megabytes: 4);
        var manager = Manager(new WorkspaceOptions { WorkDir = disk.Path });
        disk.Fill();

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None));

        Assert.False(e.Permanent);
        Assert.Equal(WorkspaceManager.OutOfSpace, e.Message);
        Assert.Empty(disk.Entries());

        disk.Free();
        using var workspace = await manager.CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None);
        Assert.Equal("main\n", File.ReadAllText(Path.Combine(workspace.RepoDir, "a.txt")));
    }

    [Fact]
    public async Task Dispose_RemovesTheLockLast_SoAWorkerKilledHalfwayLeavesAWorkspaceTheSweepTakes()
    {
        var workspace = await Manager().CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None);
        var entries = Directory.EnumerateFileSystemEntries(workspace.Root).Select(Path.GetFileName).ToList();
        var deleted = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var watcher = new FileSystemWatcher(workspace.Root) { EnableRaisingEvents = true };
        watcher.Deleted += (_, e) => deleted.Enqueue(e.Name!);

        workspace.Dispose();

        await Eventually.UntilAsync(() => entries.All(deleted.Contains), TimeSpan.FromSeconds(10), $"deletion of {string.Join(", ", entries)} seen");
        Assert.Contains(".agent-worker.lock", entries);
        Assert.Equal(".agent-worker.lock", deleted.Where(entries.Contains).Last());
    }

    [Fact]
    public async Task CreateAsync_TooManyFiles_FailsPermanentlyAndLeavesNothing()
    {
        var manager = Manager(new WorkspaceOptions { WorkDir = _work.Path, MaxRepoFiles = 3 });

        var e = await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None));

        Assert.True(e.Permanent);
        Assert.Contains("MAX_REPO_FILES", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateDirectories(_work.Path));
    }

    [Fact]
    public async Task CreateAsync_WorkerGitEnvironment_DoesNotReachGit()
    {
        // Git runs with a cleared environment, so a template (or any GIT_* setting) of the worker's cannot install or run hooks.
        var template = _work.Combine("..", $"tpl-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(template, "hooks"));
        var marker = Path.Combine(template, "hook-ran");
        var hook = Path.Combine(template, "hooks", "post-checkout");
        File.WriteAllText(hook, $"#!/bin/sh\ntouch {marker}\n");
        File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Environment.SetEnvironmentVariable("GIT_TEMPLATE_DIR", template);
        try
        {
            using var workspace = await Manager().CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None);
            Assert.False(File.Exists(Path.Combine(workspace.RepoDir, ".git", "hooks", "post-checkout")), "the template hook was installed");
            Assert.False(File.Exists(marker), "the hook ran");
        }
        finally
        {
            Environment.SetEnvironmentVariable("GIT_TEMPLATE_DIR", null);
            Directory.Delete(template, recursive: true);
        }
    }

    [Fact]
    public async Task CreateAsync_TokenIsNotOfferedToOtherHosts()
    {
        const string Token = "ghp_test_token_never_sent_0123456789";
        using var server = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        server.Start();
        var port = ((System.Net.IPEndPoint)server.LocalEndpoint).Port;
        var requests = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var serving = AnswerUnauthorizedAsync(server, requests, stop.Token);
        var manager = Manager(new WorkspaceOptions { WorkDir = _work.Path, GitToken = Token });

        await Assert.ThrowsAsync<WorkspaceException>(() => manager.CreateAsync(Job(new RepoRef($"http://127.0.0.1:{port}/repo.git")), CancellationToken.None));
        await stop.CancelAsync();
        await serving;

        Assert.NotEmpty(requests);
        var encoded = Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes($"x-access-token:{Token}"));
        Assert.DoesNotContain(requests, r => r.Contains(encoded, StringComparison.Ordinal) || r.Contains(Token, StringComparison.Ordinal));
    }

    /// <summary>An HTTP server that asks for credentials on every request and records what it was sent.</summary>
    internal static async Task AnswerUnauthorizedAsync(System.Net.Sockets.TcpListener server, System.Collections.Concurrent.ConcurrentQueue<string> requests, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                using var client = await server.AcceptTcpClientAsync(cancellationToken);
                var stream = client.GetStream();
                var buffer = new byte[8192];
                var read = await stream.ReadAsync(buffer, cancellationToken);
                requests.Enqueue(System.Text.Encoding.ASCII.GetString(buffer, 0, read));
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [Fact]
    public async Task SweepStale_RemovesUnlockedWorkspacesOnly()
    {
        var manager = Manager();
        using var live = await manager.CreateAsync(Job(new RepoRef(_repo.Path)), CancellationToken.None);
        var stale = _work.Combine("dead-job-abc");
        Directory.CreateDirectory(Path.Combine(stale, "repo"));
        File.WriteAllText(Path.Combine(stale, ".agent-worker.lock"), "");

        Assert.Equal(1, manager.SweepStale());

        Assert.False(Directory.Exists(stale));
        Assert.True(Directory.Exists(live.RepoDir));
    }

    [Fact]
    public async Task SweepStale_LeftWithoutALock_KeptWhileItMayBeBeingMade_ThenRemovedWithinSeconds()
    {
        var manager = Manager();
        // What a worker killed between making a workspace directory and locking it leaves behind.
        var orphan = _work.Combine("killed-job-xyz");
        Directory.CreateDirectory(orphan);

        Assert.Equal(0, manager.SweepStale());
        Assert.True(Directory.Exists(orphan), "a directory this young may be one a live worker is about to lock");
        await Eventually.UntilAsync(() => manager.SweepStale() == 1, TimeSpan.FromSeconds(30), "the lock-less directory swept");
        Assert.False(Directory.Exists(orphan));
    }

    public void Dispose()
    {
        _repo.Dispose();
        _work.Dispose();
    }
}
