using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents aimed at what the worker does after the run: collecting artifacts, taking the diff, keeping files.</summary>
public sealed class CollectionAttackFixture : SandboxWorkerFixture
{
    public const int MaxRepoSizeMb = 50;
    public const int MaxDiffMb = 1;

    /// <summary>Sparse files in the artifacts folder, each just under the 100 MiB a file may have: several GB to hash, no disk used.</summary>
    public const int SlowFiles = 100;

    protected override bool WarmUp => true;

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["MAX_REPO_SIZE_MB"] = MaxRepoSizeMb.ToString(CultureInfo.InvariantCulture),
        ["MAX_DIFF_MB"] = MaxDiffMb.ToString(CultureInfo.InvariantCulture),
        // Room for the slow collection: the limit under attack there is time, not size.
        ["MAX_ARTIFACT_MB"] = "20000",
    };

    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("fifo-artifact", """
            mkfifo "$AGENT_WORKER_ARTIFACTS/b.fifo"
            echo DONE
            """),
        new("plain", "echo DONE"),
        new("slow-collection", $$"""
            for i in $(seq 1 {{SlowFiles}}); do truncate -s 99M "$AGENT_WORKER_ARTIFACTS/f$i.bin"; done
            echo DONE
            """),
        new("timeout-writer", """
            head -c 150000000 /dev/urandom > /workspace/rand.bin
            echo WROTE
            sleep 100
            """, TimeoutSeconds: 5),
        new("diff-flood", """
            head -c 3000000 /dev/urandom | base64 > flood.txt
            echo DONE
            """),
        new("duplicate-artifact", """
            printf png > x.png
            echo '{"type":"artifact","path":"x.png"}'
            echo '{"type":"artifact","path":"./x.png"}'
            echo '{"type":"artifact","path":"/workspace/x.png"}'
            echo DONE
            """),
    ];
}

/// <summary>The post-run path holds against the agent's tree: regular files only, bounded in size and time, a cancel ends it.</summary>
[Collection(QuietMachine.Name)]
public sealed class CollectionAttackTests(CollectionAttackFixture fixture) : IClassFixture<CollectionAttackFixture>
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task FifoInTheArtifactsFolder_IsSkippedAndSaid_SlotsKeepTakingWork()
    {
        // Both slots get one: before, each hung in open(2) for good and nothing else ran.
        var fifos = new[] { await fixture.EnqueueAsync("fifo-artifact"), await fixture.EnqueueAsync("fifo-artifact") };

        var plain = await fixture.RunAsync("plain");

        Assert.Equal("succeeded", plain.State);
        plain.AssertHealthStayedFast();
        foreach (var id in fifos)
        {
            var run = await fixture.WaitAsync(id);
            Assert.Equal("succeeded", run.State);
            Assert.Contains(run.Events, e => e.GetProperty("message").GetString() == "b.fifo: skipped: not a regular file");
            run.AssertHealthStayedFast();
        }
        await fixture.AssertWorkerHealthyAsync();
    }

    [Fact]
    public async Task CancelWhileArtifactsAreCollected_EndsTheJobCancelledWithin2s()
    {
        using var health = fixture.WatchHealth();
        var id = await fixture.EnqueueAsync("slow-collection");
        await Eventually.UntilAsync(() => fixture.Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs"),
            page => page.GetProperty("items").EnumerateArray().Any(e => e.GetProperty("message").GetString()!.StartsWith("f1.bin: ", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), $"job {id} collects its artifacts");

        var clock = Stopwatch.StartNew();
        using (var cancel = await fixture.Client.PostAsync($"/v1/jobs/{id}/cancel", null))
            Assert.True(cancel.IsSuccessStatusCode, $"cancel: {(int)cancel.StatusCode}");
        var job = await Eventually.UntilAsync(() => fixture.Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"),
            j => j.GetProperty("state").GetString() != "running", TimeSpan.FromSeconds(2), $"job {id} ends after its cancel");

        Assert.Equal("cancelled", job.GetProperty("state").GetString());
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(2));
        health.Stop().AssertFast($"job {id} collected its artifacts and was cancelled");
    }

    [Fact]
    public async Task TimedOutAgentOverTheRepoSizeLimit_FailsNamingIt_StoresNothingOverALimit()
    {
        var run = await fixture.RunAsync("timeout-writer");

        run.AssertFinished("WROTE");
        Assert.Equal("failed", run.State);
        Assert.Contains("MAX_REPO_SIZE_MB", run.Job.GetProperty("error").GetString(), StringComparison.Ordinal);
        var largest = Directory.EnumerateFiles(fixture.DataDir, "*", SearchOption.AllDirectories).Select(f => new FileInfo(f)).MaxBy(f => f.Length);
        Assert.True(largest is null || largest.Length <= CollectionAttackFixture.MaxRepoSizeMb * MiB, $"{largest?.FullName}: {largest?.Length} bytes");
        run.AssertHealthStayedFast();
    }

    [Fact]
    public async Task DiffOverMaxDiffMb_IsKeptCutAtTheLimit_AndTheResultSaysSo()
    {
        var run = await fixture.RunAsync("diff-flood");

        Assert.Equal("succeeded", run.State);
        var changes = run.Job.GetProperty("result").GetProperty("changes");
        Assert.True(changes.TryGetProperty("diffTruncated", out var truncated) && truncated.GetBoolean(), $"changes: {changes}");
        var diff = await fixture.Client.GetByteArrayAsync($"/v1/jobs/{run.Id}/artifacts/diff.patch");
        Assert.InRange(diff.Length, 1, CollectionAttackFixture.MaxDiffMb * MiB);
        Assert.Contains(run.Lines, l => l.Contains("MAX_DIFF_MB", StringComparison.Ordinal));
        run.AssertHealthStayedFast();
    }

    [Fact]
    public async Task OneArtifactReportedUnderThreeSpellings_IsKeptOnce_Downloadable_ReceiptVerifies()
    {
        var run = await fixture.RunAsync("duplicate-artifact");

        Assert.Equal("succeeded", run.State);
        var names = run.Job.GetProperty("result").GetProperty("artifacts").EnumerateArray().Select(a => a.GetProperty("name").GetString()).ToList();
        Assert.Equal(["diff.patch", "workspace/x.png"], names);
        Assert.Equal("png", await fixture.Client.GetStringAsync($"/v1/jobs/{run.Id}/artifacts/workspace/x.png"));
        Assert.DoesNotContain(run.Events, e => e.GetProperty("message").GetString()!.Contains(fixture.Dir.Path, StringComparison.Ordinal));
        run.AssertHealthStayedFast();

        var cli = WorkerProcess.Start(new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = fixture.DataDir, ["WORK_DIR"] = fixture.WorkDir }, "jobs", "receipt", run.Id, "--verify");
        await using (cli)
            Assert.True(await cli.WaitForExitAsync(TimeSpan.FromSeconds(120)) == 0, cli.Output);
    }
}
