using System.Globalization;
using System.Text;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents that exhaust processes, memory, CPU, disk and the worker's output handling, under low limits.</summary>
public sealed class ResourceAttackFixture : SandboxWorkerFixture
{
    public const int Pids = 64;
    public const int MemoryMb = 128;
    public const int TmpMb = 8;
    public const int FileSizeMb = 16;

    /// <summary>Half a core: three spinners could take both of this host's cores without the quota.</summary>
    public const double Cpus = 0.5;
    public const int MaxOutputBytes = 1024 * 1024;

    /// <summary>Argv markers to find leftovers on the host (see <see cref="ProcessAttackFixture"/>).</summary>
    public string ForkSleep { get; } = $"31339.{Random.Shared.Next(100_000, 999_999)}";

    public string SpinMarker => $"spin-{Nonce}";

    public string TmpFillPrefix => $"aw-fill-{Nonce}-";

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["SANDBOX_PIDS"] = Pids.ToString(CultureInfo.InvariantCulture),
        ["SANDBOX_MEMORY_MB"] = MemoryMb.ToString(CultureInfo.InvariantCulture),
        ["SANDBOX_TMP_MB"] = TmpMb.ToString(CultureInfo.InvariantCulture),
        ["SANDBOX_FILE_SIZE_MB"] = FileSizeMb.ToString(CultureInfo.InvariantCulture),
        ["SANDBOX_CPUS"] = Cpus.ToString(CultureInfo.InvariantCulture),
        ["MAX_OUTPUT_BYTES"] = MaxOutputBytes.ToString(CultureInfo.InvariantCulture),
    };

    // Every bomb is bounded (300 processes, 512 MB, 32 MB of /tmp, 64 MB of disk), so a run without the
    // sandbox shows the tests failing without taking the machine down.
    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("fork-bomb", $$"""
            python3 - <<'EOF'
            import os
            forked = 0
            try:
                for _ in range(300):
                    if os.fork() == 0:
                        try:
                            os.execvp("sleep", ["sleep", "{{ForkSleep}}"])
                        finally:
                            os._exit(127)
                    forked += 1
            except OSError as e:
                print("FORK-FAILED", e.errno, flush=True)
            print("FORKED", forked, flush=True)
            print("DONE", flush=True)
            EOF
            """),
        new("memory-bomb", """
            echo STARTED
            exec python3 -c 'b = b"x" * (512 << 20); print("ALLOCATED", len(b), flush=True)'
            """),
        // One spinner stays in the agent's group, one leaves its session and environment tag behind.
        new("cpu-spin", $$"""
            sh -c 'while :; do :; done' {{SpinMarker}} &
            env -i setsid sh -c 'while :; do :; done' {{SpinMarker}} </dev/null >/dev/null 2>&1 &
            while :; do :; done
            """, TimeoutSeconds: 3),
        new("tmp-fill", $$"""
            for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=/tmp/{{TmpFillPrefix}}$i bs=1M count=4 2>>fill.err; done
            echo "TMP-BYTES $(cat /tmp/{{TmpFillPrefix}}* | wc -c)"
            if grep -q 'No space left' fill.err; then echo ENOSPC; fi
            echo DONE
            """),
        new("disk-fill", """
            dd if=/dev/zero of=big bs=1M count=64 2>/dev/null
            echo "BIG-BYTES $(stat -c %s big)"
            echo DONE
            """),
        // access(2) only: asks whether the agent could move itself out of its control groups, without doing
        // it to the host's hierarchy when the protection is missing.
        new("cgroup-escape", """
            for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/tasks; do
              if [ -w "$f" ]; then echo "WRITABLE $f"; fi
            done
            echo DONE
            """),
        new("stdout-flood", """
            line=$(head -c 1000 /dev/zero | tr '\0' a)
            yes "$line" | head -c 1073741824
            echo DONE
            """),
        new("long-line", """
            head -c 104857600 /dev/zero | tr '\0' b
            echo
            echo DONE
            """),
    ];
}

/// <summary>Resource containment: cgroup and rlimit caps hold, the job ends, and the worker stays alive and small.</summary>
public sealed class ResourceAttackTests(ResourceAttackFixture fixture) : IClassFixture<ResourceAttackFixture>
{
    private const long MiB = 1024 * 1024;

    /// <summary>
    /// Peak RSS over the worker's whole life, every agent's output included. An idle worker peaks near 120 MiB
    /// here; buffering the 100 MB line (let alone the 1 GB) would take it well past this.
    /// </summary>
    private const long WorkerPeakRss = 256 * MiB;

    [Fact]
    public async Task ForkBomb_StopsAtThePidsLimit_WorkerStaysHealthy()
    {
        try
        {
            var run = await fixture.RunAsync("fork-bomb");

            run.AssertFinished();
            Assert.NotNull(run.Value("FORK-FAILED"));
            Assert.InRange(int.Parse(run.Value("FORKED")!, CultureInfo.InvariantCulture), 0, ResourceAttackFixture.Pids);
            await fixture.AssertWorkerHealthyAsync();
            await Eventually.UntilAsync(() => Processes.WithArgument(fixture.ForkSleep).Count == 0, TimeSpan.FromSeconds(2), "the bomb's processes killed with the job");
        }
        finally
        {
            Processes.KillWithArgument(fixture.ForkSleep);
        }
    }

    [Fact]
    public async Task MemoryBomb_IsKilledInItsCgroup_WorkerStaysHealthy()
    {
        var run = await fixture.RunAsync("memory-bomb");

        Assert.True(run.Printed("STARTED"), run.ToString());
        Assert.DoesNotContain(run.Lines, l => l.StartsWith("ALLOCATED", StringComparison.Ordinal));
        Assert.NotEqual("succeeded", run.State);
        var resources = run.Resources ?? throw new Xunit.Sdk.XunitException($"no result.resources: {run.Job}");
        Assert.True(resources.TryGetProperty("peakMemoryBytes", out var peak) && peak.GetInt64() <= (ResourceAttackFixture.MemoryMb + 16) * MiB, $"resources: {resources}");
        await fixture.AssertWorkerHealthyAsync();
    }

    [Fact]
    public async Task CpuSpinPastTheTimeout_EndsTimedOut_WithEveryProcessKilled()
    {
        try
        {
            var run = await fixture.RunAsync("cpu-spin");

            Assert.Equal("timed_out", run.State);
            await Eventually.UntilAsync(() => Processes.WithArgument(fixture.SpinMarker).Count == 0, TimeSpan.FromSeconds(2), "spinning children killed with the job");
            var resources = run.Resources ?? throw new Xunit.Sdk.XunitException($"no result.resources: {run.Job}");
            Assert.True(resources.TryGetProperty("wallSeconds", out var wall) && wall.GetDouble() >= 2.5, $"resources: {resources}");
            // The spinners ran, within the CPU quota (plus a period or two of slack).
            Assert.True(resources.TryGetProperty("cpuSeconds", out var cpu), $"resources: {resources}");
            Assert.InRange(cpu.GetDouble(), 0.5, ResourceAttackFixture.Cpus * wall.GetDouble() + 0.5);
            await fixture.AssertWorkerHealthyAsync();
        }
        finally
        {
            Processes.KillWithArgument(fixture.SpinMarker);
        }
    }

    [Fact]
    public async Task FillTmp_StopsAtTheTmpfsCap_HostTmpUntouched()
    {
        try
        {
            var run = await fixture.RunAsync("tmp-fill");

            run.AssertFinished();
            Assert.True(run.Printed("ENOSPC"), run.ToString());
            Assert.InRange(long.Parse(run.Value("TMP-BYTES")!, CultureInfo.InvariantCulture), 1, ResourceAttackFixture.TmpMb * MiB);
            Assert.Empty(Directory.EnumerateFiles("/tmp", fixture.TmpFillPrefix + "*"));
        }
        finally
        {
            foreach (var file in Directory.EnumerateFiles("/tmp", fixture.TmpFillPrefix + "*"))
                File.Delete(file);
        }
    }

    [Fact]
    public async Task FillWorkspaceWithOneFile_IsCutAtTheFileSizeLimit()
    {
        var run = await fixture.RunAsync("disk-fill");

        run.AssertFinished();
        Assert.InRange(long.Parse(run.Value("BIG-BYTES")!, CultureInfo.InvariantCulture), 1, ResourceAttackFixture.FileSizeMb * MiB);
    }

    [Fact]
    public async Task MoveOutOfItsCgroups_IsDenied()
    {
        var run = await fixture.RunAsync("cgroup-escape");

        run.AssertFinished();
        Assert.Empty(run.Values("WRITABLE"));
    }

    [Fact]
    public async Task OneGigabyteOfStdout_KeepsAtMostMaxOutputBytes_WorkerMemoryBounded()
    {
        var run = await fixture.RunAsync("stdout-flood");

        var kept = run.Lines.Sum(l => Encoding.UTF8.GetByteCount(l) + 1L);
        // One notice line past the cap is allowed; the 1 GB is not.
        Assert.InRange(kept, ResourceAttackFixture.MaxOutputBytes / 2, ResourceAttackFixture.MaxOutputBytes + 1024);
        Assert.False(run.Printed("DONE"), "output past the cap was kept");
        AssertWorkerMemoryBounded();
        await fixture.AssertWorkerHealthyAsync();
    }

    [Fact]
    public async Task HundredMegabyteLine_IsTruncatedTo64KiB_WorkerMemoryBounded()
    {
        var run = await fixture.RunAsync("long-line");

        run.AssertFinished();
        var line = Assert.Single(run.Lines, l => l.StartsWith("bbbb", StringComparison.Ordinal));
        Assert.InRange(Encoding.UTF8.GetByteCount(line), 64 * 1024, 64 * 1024 + 64);
        AssertWorkerMemoryBounded();
        await fixture.AssertWorkerHealthyAsync();
    }

    private void AssertWorkerMemoryBounded()
    {
        var peak = Processes.StatusBytes(fixture.Worker.Pid, "VmHWM");
        Assert.True(peak < WorkerPeakRss, $"worker peak RSS {peak / MiB} MiB");
    }
}
