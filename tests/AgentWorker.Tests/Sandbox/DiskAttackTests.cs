using System.Diagnostics;
using System.Globalization;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// Hostile agents and repositories that go for the worker's disk and for local repositories the job should not read:
/// writes past the caps while the agent runs, a small repository whose checkout is huge, root-only and worker-owned paths.
/// </summary>
public sealed class DiskAttackFixture : SandboxWorkerFixture
{
    public const int CapMb = 50;

    /// <summary>One blob of 100 MB of one letter under twelve names: about 100 KB packed, 1.2 GB checked out.</summary>
    public const int BombBlobMb = 100;

    public string BombRepository => Dir.Combine("bomb.git");

    public string RootOnlyRepository => Dir.Combine("rootonly", "secret.git");

    protected override bool WarmUp => true;

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["MAX_REPO_SIZE_MB"] = CapMb.ToString(CultureInfo.InvariantCulture),
        ["MAX_ARTIFACT_MB"] = CapMb.ToString(CultureInfo.InvariantCulture),
        ["SANDBOX_HOME_MB"] = CapMb.ToString(CultureInfo.InvariantCulture),
    };

    // Each writer tries 300 MB, six times its cap; the file size rlimit (1 GiB by default) is not what stops it.
    protected override IEnumerable<HostileAgent> Agents =>
    [
        Filler("fill-artifacts", "$AGENT_WORKER_ARTIFACTS"),
        Filler("fill-workspace", "/workspace"),
        Filler("fill-home", "$HOME"),
        new("read-repo", $"""
            if grep -rq {Nonce} . 2>/dev/null; then echo SECRET-SEEN; fi
            echo DONE
            """),
    ];

    private static HostileAgent Filler(string id, string directory) => new(id, $$"""
        dd if=/dev/zero of="{{directory}}/fill" bs=1M count=300 2>/tmp/fill.err
        if grep -q 'No space left' /tmp/fill.err; then echo ENOSPC; fi
        echo "BYTES $(stat -c %s "{{directory}}/fill")"
        echo DONE
        """);

    protected override Task PrepareAsync()
    {
        var source = Dir.Combine("bomb-src");
        Shell($"""
            set -e
            git init --quiet {source}
            cd {source}
            blob=$(head -c {BombBlobMb * 1024 * 1024} /dev/zero | tr '\0' a | git hash-object -w --stdin)
            for i in $(seq 1 12); do git update-index --add --cacheinfo "100644,$blob,copy-$i.txt"; done
            git -c user.name=t -c user.email=t@example.invalid commit --quiet -m bomb
            git repack -a -d -q
            git clone --bare --quiet {source} {BombRepository}
            rm -rf {source}
            """);
        var hidden = Dir.Combine("rootonly");
        Directory.CreateDirectory(hidden);
        File.SetUnixFileMode(hidden, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var secret = TestRepository.Create(new Dictionary<string, string> { ["secret.txt"] = $"{Nonce}\n" });
        TestRepository.Git(Dir.Path, "clone", "--bare", "--quiet", secret.Path, RootOnlyRepository);
        return Task.CompletedTask;
    }

    private static void Shell(string script)
    {
        var start = new ProcessStartInfo("bash", ["-c", script]) { RedirectStandardError = true };
        using var bash = Process.Start(start)!;
        var errors = bash.StandardError.ReadToEnd();
        bash.WaitForExit();
        Assert.True(bash.ExitCode == 0, errors);
    }
}

/// <summary>Disk caps hold while the agent runs and before the clone writes; local repositories are read with the sandbox user's rights.</summary>
[Collection(QuietMachine.Name)]
public sealed class DiskAttackTests(DiskAttackFixture fixture) : IClassFixture<DiskAttackFixture>
{
    private const long MiB = 1024 * 1024;

    [Theory]
    [InlineData("fill-artifacts", "artifacts folder", "MAX_ARTIFACT_MB")]
    [InlineData("fill-workspace", "workspace", "MAX_REPO_SIZE_MB")]
    [InlineData("fill-home", "home directory", "SANDBOX_HOME_MB")]
    public async Task WritePastTheCap_FailsWithEnospcInside_AndTheJobSaysWhy(string agent, string tree, string setting)
    {
        var run = await fixture.RunAsync(agent);

        run.AssertFinished();
        Assert.True(run.Printed("ENOSPC"), run.ToString());
        Assert.InRange(long.Parse(run.Value("BYTES")!, CultureInfo.InvariantCulture), 1, DiskAttackFixture.CapMb * MiB);
        Assert.Equal("failed", run.State);
        var error = run.Job.GetProperty("error").ToString();
        Assert.Contains($"filled its {tree}", error, StringComparison.Ordinal);
        Assert.Contains(setting, error, StringComparison.Ordinal);
        AssertNoStoredFileOver(DiskAttackFixture.CapMb * MiB);
        run.AssertHealthStayedFast();
    }

    [Fact]
    public async Task BlobBombRepository_RefusedBeforeTheCheckoutIsWritten()
    {
        using var disk = new DiskWatch(fixture.WorkDir, fixture.DataDir);

        var run = await fixture.RunAsync("read-repo", repoUrl: fixture.BombRepository);

        var written = await disk.StopAsync();
        Assert.Equal("failed", run.State);
        var error = run.Job.GetProperty("error").ToString();
        Assert.Contains("MAX_REPO_SIZE_MB", error, StringComparison.Ordinal);
        Assert.Contains("nothing was checked out", error, StringComparison.Ordinal);
        Assert.False(run.Printed("DONE"), "the agent ran on the bomb");
        Assert.True(disk.Samples > 0, "the disk was never sampled");
        // The checkout would be 1.2 GB; what reached the disk is the small pack (and the clone cache's copy of it).
        Assert.True(written < DiskAttackFixture.CapMb * MiB, $"{written / MiB} MiB written under WORK_DIR and the data dir during the clone");
        run.AssertHealthStayedFast();
    }

    [Fact]
    public async Task RootOnlyRepository_IsRefused_TheAgentNeverSeesIt()
    {
        foreach (var url in new[] { fixture.RootOnlyRepository, new Uri(fixture.RootOnlyRepository).AbsoluteUri })
        {
            var run = await fixture.RunAsync("read-repo", repoUrl: url);

            Assert.Equal("failed", run.State);
            Assert.Contains("not readable by the sandbox user", run.Job.GetProperty("error").ToString(), StringComparison.Ordinal);
            Assert.False(run.Printed("SECRET-SEEN"), run.ToString());
            Assert.False(run.Printed("DONE"), "the agent ran");
            run.AssertHealthStayedFast();
        }
    }

    [Fact]
    public async Task TheWorkersOwnCloneCache_IsRefusedAsARepository()
    {
        // One ordinary job fills the clone cache with a mirror of the fixture's repository.
        (await fixture.RunAsync("read-repo")).AssertFinished();
        var mirror = Assert.Single(Directory.EnumerateDirectories(Path.Combine(fixture.DataDir, "clone-cache"), "*.git"));

        foreach (var url in new[] { mirror, Path.Combine(fixture.DataDir, "..", "data", "clone-cache", Path.GetFileName(mirror)), fixture.WorkDir })
        {
            var run = await fixture.RunAsync("read-repo", repoUrl: url);

            Assert.Equal("failed", run.State);
            var error = run.Job.GetProperty("error").ToString();
            Assert.Contains("worker's own directories", error, StringComparison.Ordinal);
            Assert.DoesNotContain(fixture.Dir.Path, error, StringComparison.Ordinal);
            Assert.False(run.Printed("DONE"), "the agent ran");
            run.AssertHealthStayedFast();
        }
    }

    private void AssertNoStoredFileOver(long bytes)
    {
        var large = Directory.EnumerateFiles(fixture.DataDir, "*", SearchOption.AllDirectories).Where(f => new FileInfo(f).Length > bytes).ToList();
        Assert.True(large.Count == 0, $"stored over the cap: {string.Join(", ", large)}");
    }
}

/// <summary>Samples the bytes of all files under some directories every 10 ms and keeps the largest total seen.</summary>
internal sealed class DiskWatch : IDisposable
{
    private readonly string[] _roots;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task<long> _sampling;

    public DiskWatch(params string[] roots)
    {
        _roots = roots;
        _sampling = Task.Run(SampleAsync);
    }

    public int Samples { get; private set; }

    private async Task<long> SampleAsync()
    {
        long largest = 0;
        while (!_stop.IsCancellationRequested)
        {
            largest = Math.Max(largest, _roots.Sum(Total));
            Samples++;
            await Task.Delay(10, CancellationToken.None);
        }
        return largest;
    }

    // Files come and go while the worker clones: whatever vanishes mid-walk counts as nothing.
    private static long Total(string root)
    {
        if (!Directory.Exists(root))
            return 0;
        long total = 0;
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        try
        {
            foreach (var file in new DirectoryInfo(root).EnumerateFiles("*", options))
            {
                try
                {
                    total += file.Length;
                }
                catch (IOException)
                {
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return total;
    }

    public async Task<long> StopAsync()
    {
        await _stop.CancelAsync();
        return await _sampling;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }
}
