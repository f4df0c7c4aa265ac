using System.Collections.Concurrent;
using System.Diagnostics;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Bench;

/// <summary>
/// No-op jobs through one backend's queue, measured the way the peers measure
/// (/work/shared/bench/peers: hangfire/Program.cs, bullmq/bench.mjs): sequential enqueue, a concurrent drain,
/// then latency of single jobs sent one at a time to idle workers.
/// </summary>
internal sealed class QueueBench
{
    private const int LatencySamples = 200;

    // Only bounds one LeaseAsync call: a waiting worker is woken by the enqueue, so this never adds latency.
    private static readonly TimeSpan LeaseWait = TimeSpan.FromSeconds(5);

    private readonly IJobQueue queue;
    private readonly int jobs;

    // Latency jobs by id; the worker that leased one reports the Stopwatch timestamp taken as LeaseAsync returned.
    private readonly ConcurrentDictionary<string, TaskCompletionSource<long>> watched = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource<long> drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int completed;

    private QueueBench(IJobQueue queue, int jobs)
    {
        this.queue = queue;
        this.jobs = jobs;
    }

    public static async Task<BenchResult> RunAsync(BenchStore store, int jobs, int workers, CancellationToken cancellationToken)
    {
        await using (store)
        {
            var queue = await store.OpenAsync(cancellationToken);
            await using (queue)
                return await new QueueBench(queue, jobs).MeasureAsync($"agent-worker-{store.Backend}", workers, cancellationToken);
        }
    }

    private async Task<BenchResult> MeasureAsync(string peer, int workers, CancellationToken cancellationToken)
    {
        var enqueueStart = Stopwatch.GetTimestamp();
        for (var i = 0; i < jobs; i++)
            await queue.EnqueueAsync(Noop($"drain-{i}"), cancellationToken);
        var enqueueSeconds = Stopwatch.GetElapsedTime(enqueueStart).TotalSeconds;

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Like the peers' drain clock, this one includes starting the workers.
        var drainStart = Stopwatch.GetTimestamp();
        var drainCpuStart = ProcessCpu.Milliseconds().Self;
        var loops = Enumerable.Range(1, workers).Select(i => Task.Run(() => WorkAsync($"bench-{i}", stop.Token), CancellationToken.None)).ToArray();
        // A loop only ends early by throwing; without this the run would wait forever for jobs nobody takes.
        var anyLoopEnded = Task.WhenAny(loops).Unwrap();
        try
        {
            var drainSeconds = Stopwatch.GetElapsedTime(drainStart, await UnlessALoopEndsAsync(drained.Task, anyLoopEnded, cancellationToken)).TotalSeconds;
            var drainCpuMilliseconds = ProcessCpu.Milliseconds().Self - drainCpuStart;

            var latencies = new double[LatencySamples];
            for (var i = 0; i < LatencySamples; i++)
            {
                var id = $"latency-{i}";
                var leased = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                watched[id] = leased;
                var sentAt = Stopwatch.GetTimestamp();
                await queue.EnqueueAsync(Noop(id), cancellationToken);
                // The report comes after the job completed, so every sample starts with all workers idle in LeaseAsync.
                latencies[i] = Stopwatch.GetElapsedTime(sentAt, await UnlessALoopEndsAsync(leased.Task, anyLoopEnded, cancellationToken)).TotalMilliseconds;
            }

            var (p50, p99) = Percentiles.Of(latencies);
            return new BenchResult(
                peer,
                jobs,
                workers,
                EnqueuePerSecond: jobs / enqueueSeconds,
                DrainPerSecond: jobs / drainSeconds,
                EndToEndPerSecond: jobs / (enqueueSeconds + drainSeconds),
                LatencyP50Milliseconds: p50,
                LatencyP99Milliseconds: p99,
                DrainCpuMicrosecondsPerJob: drainCpuMilliseconds * 1000 / jobs);
        }
        finally
        {
            await stop.CancelAsync();
            // A loop's failure already surfaced through anyLoopEnded; rethrowing here would hide the first error.
            await Task.WhenAll(loops).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task WorkAsync(string workerId, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                var lease = await queue.LeaseAsync(workerId, LeaseWait, stop);
                if (lease is null)
                    continue;
                var leasedAt = Stopwatch.GetTimestamp();
                await using (lease)
                    await lease.CompleteAsync(new JobResult(), stop);
                if (Interlocked.Increment(ref completed) == jobs)
                    drained.TrySetResult(Stopwatch.GetTimestamp());
                if (watched.TryRemove(lease.Job.Id, out var waiter))
                    waiter.TrySetResult(leasedAt);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private static async Task<long> UnlessALoopEndsAsync(Task<long> signal, Task anyLoopEnded, CancellationToken cancellationToken)
    {
        if (await Task.WhenAny(signal, anyLoopEnded).WaitAsync(cancellationToken) == signal)
            return await signal;
        await anyLoopEnded;
        throw new InvalidOperationException("a worker loop stopped before the run was done");
    }

    internal static JobSpec Noop(string id) => new() { Id = id, Agent = "noop", Repo = new RepoRef("/srv/noop") };
}
