using System.Collections.Concurrent;
using AgentWorker.Core.Execution;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Execution;

public sealed class ProcessRunnerTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ProcessRunner _runner = new(TimeProvider.System);

    // Starts a background child, a setsid'd grandchild that leaves the process group, writes all pids, then blocks.
    private const string TreeScript = """
        sleep 300 &
        echo $! >> pids
        setsid sh -c 'echo $$ >> pids; exec sleep 300' &
        echo $$ >> pids
        while [ "$(wc -l < pids)" -lt 3 ]; do sleep 0.01; done
        echo ready
        sleep 300
        """;

    [Fact]
    public async Task RunAsync_Timeout_KillsWholeTreeIncludingSetsidGrandchild()
    {
        var lines = new ConcurrentQueue<string>();
        var outcome = await _runner.RunAsync(Spec(["sh", "-c", TreeScript], TimeSpan.FromSeconds(3)), Collect(lines), CancellationToken.None);

        Assert.Equal(ProcessEnd.TimedOut, outcome.End);
        Assert.Null(outcome.ExitCode);
        Assert.Contains("ready", lines);
        AssertAllDead();
    }

    [Fact]
    public async Task RunAsync_Cancelled_KillsWholeTree()
    {
        using var cancel = new CancellationTokenSource();
        var outcome = await _runner.RunAsync(Spec(["sh", "-c", TreeScript], TimeSpan.FromMinutes(5)), line =>
        {
            if (line.Text == "ready")
                cancel.Cancel();
            return ValueTask.CompletedTask;
        }, cancel.Token);

        Assert.Equal(ProcessEnd.Cancelled, outcome.End);
        AssertAllDead();
    }

    [Fact]
    public async Task RunAsync_DaemonLeftBehindAfterExit_IsKilled()
    {
        var outcome = await _runner.RunAsync(
            Spec(["sh", "-c", "setsid sh -c 'echo $$ >> pids; exec sleep 300' & while [ ! -s pids ]; do sleep 0.01; done; exit 0"], TimeSpan.FromMinutes(1)),
            _ => ValueTask.CompletedTask, CancellationToken.None);

        Assert.Equal(ProcessEnd.Exited, outcome.End);
        Assert.Equal(0, outcome.ExitCode);
        AssertAllDead();
    }

    [Fact]
    public async Task RunAsync_OutputOverCap_KeepsCapAndDrainsTheRest()
    {
        var lines = new ConcurrentQueue<string>();
        var line = new string('7', 99);
        var outcome = await _runner.RunAsync(
            Spec(["sh", "-c", $"yes {line} | head -n 30000; echo done >&2; exit 3"], TimeSpan.FromMinutes(1), maxOutput: 10_000),
            Collect(lines), CancellationToken.None);

        Assert.Equal(3, outcome.ExitCode);
        Assert.True(outcome.OutputTruncated);
        Assert.True(outcome.OutputBytes > 2_000_000, $"all output was read, got {outcome.OutputBytes}");
        var kept = lines.Where(l => l == line).Sum(l => l.Length + 1);
        Assert.InRange(kept, 9_000, 10_000);
        Assert.Contains(lines, l => l.Contains("output cap of 10000 bytes", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_FloodOfEmptyLines_HitsTheCapToo()
    {
        var lines = new ConcurrentQueue<string>();
        var outcome = await _runner.RunAsync(
            Spec(["sh", "-c", "yes '' | head -n 100000"], TimeSpan.FromMinutes(1), maxOutput: 64_000),
            Collect(lines), CancellationToken.None);

        Assert.True(outcome.OutputTruncated);
        Assert.InRange(lines.Count(l => l.Length == 0), 900, 1000);
    }

    [Fact]
    public async Task RunAsync_Environment_IsOnlyWhatTheSpecGives()
    {
        Environment.SetEnvironmentVariable("AW_TEST_WORKER_SECRET", "leak-me");
        var lines = new ConcurrentQueue<string>();
        var spec = Spec(["env"], TimeSpan.FromMinutes(1)) with
        {
            Environment = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin", ["GIVEN"] = "yes" },
        };
        await _runner.RunAsync(spec, Collect(lines), CancellationToken.None);

        Assert.Contains("GIVEN=yes", lines);
        Assert.DoesNotContain(lines, l => l.Contains("leak-me", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_MissingProgram_ThrowsBeforeStarting()
    {
        var e = await Assert.ThrowsAsync<ProcessStartException>(() =>
            _runner.RunAsync(Spec(["no-such-agent-binary"], TimeSpan.FromMinutes(1)), _ => ValueTask.CompletedTask, CancellationToken.None));
        Assert.Contains("no-such-agent-binary", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_LongLine_IsTruncatedNotBuffered()
    {
        var lines = new ConcurrentQueue<string>();
        await _runner.RunAsync(Spec(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; echo after"], TimeSpan.FromMinutes(1)), Collect(lines), CancellationToken.None);

        var longLine = Assert.Single(lines, l => l.StartsWith("xxx", StringComparison.Ordinal));
        Assert.EndsWith("[line truncated]", longLine, StringComparison.Ordinal);
        Assert.True(longLine.Length < 70_000);
        Assert.Contains("after", lines);
    }

    [Fact]
    public async Task RunAsync_StandardInput_ReachesTheChildWholeBeyondThePipeBuffer()
    {
        var prompt = string.Concat(Enumerable.Repeat("prompt…", 200 * 1024 / 9));
        var lines = new ConcurrentQueue<string>();

        var outcome = await _runner.RunAsync(Spec(["sh", "-c", "sha256sum | cut -c1-64"], TimeSpan.FromMinutes(1)) with { StandardInput = prompt }, Collect(lines), CancellationToken.None);

        Assert.Equal(0, outcome.ExitCode);
        Assert.Equal([Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(prompt)))], lines);
    }

    [Fact]
    public async Task RunAsync_ChildIgnoresItsStandardInput_EndsNormally()
    {
        var outcome = await _runner.RunAsync(Spec(["sh", "-c", "exit 0"], TimeSpan.FromMinutes(1)) with { StandardInput = new string('x', 1024 * 1024) }, _ => ValueTask.CompletedTask, CancellationToken.None);

        Assert.Equal((ProcessEnd.Exited, 0), (outcome.End, outcome.ExitCode));
    }

    private ProcessSpec Spec(string[] argv, TimeSpan timeout, long maxOutput = 1_000_000) =>
        new(argv, _dir.Path, new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, timeout, maxOutput);

    private static Func<OutputLine, ValueTask> Collect(ConcurrentQueue<string> lines) => line =>
    {
        lines.Enqueue(line.Text);
        return ValueTask.CompletedTask;
    };

    private void AssertAllDead()
    {
        var pids = Processes.ReadPids(_dir.Combine("pids"));
        Assert.NotEmpty(pids);
        Assert.All(pids, pid => Assert.False(Processes.IsAlive(pid), $"pid {pid} survived"));
    }

    public void Dispose() => _dir.Dispose();
}
