using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;

namespace AgentWorker.Bench;

/// <summary>
/// Whether a deep backlog makes the queue slower: the cost of one enqueue and of one lease with
/// a small and with a large backlog of queued jobs. Two stores on the same backend
/// are filled, then measured in alternating rounds (so a slow stretch of the machine hits both alike); each round
/// enqueues <c>ops</c> jobs one at a time and leases as many, so the depth stays put. Reports per-operation medians.
/// </summary>
internal static class ScaleBench
{
    // Enqueues in flight while filling: the fill is set-up, not a measure, so it may use every bit of concurrency.
    private const int FillConcurrency = 256;

    public static async Task<string> RunAsync(Func<BenchStore> newStore, int small, int large, int ops, int rounds, CancellationToken cancellationToken)
    {
        await using var smallStore = newStore();
        await using var largeStore = newStore();
        var smallQueue = await smallStore.OpenAsync(cancellationToken);
        await using var smallQueueScope = smallQueue;
        var largeQueue = await largeStore.OpenAsync(cancellationToken);
        await using var largeQueueScope = largeQueue;

        await FillAsync(smallQueue, "small", small, cancellationToken);
        var fillStart = Stopwatch.GetTimestamp();
        await FillAsync(largeQueue, "large", large, cancellationToken);
        var fillPerSecond = large / Stopwatch.GetElapsedTime(fillStart).TotalSeconds;
        await smallStore.SettleAsync(cancellationToken);
        await largeStore.SettleAsync(cancellationToken);

        var samples = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        for (var round = 0; round < rounds; round++)
        {
            // Alternating which goes first, too: the first block after a fill may pay for a checkpoint or a rewrite.
            var order = round % 2 == 0 ? new[] { ("small", smallQueue), ("large", largeQueue) } : [("large", largeQueue), ("small", smallQueue)];
            foreach (var (level, queue) in order)
                await MeasureRoundAsync(queue, level, round, ops, samples, cancellationToken);
        }

        double Median(string key) => Percentiles.Of(samples[key]).P50;
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("bench", "scale");
            json.WriteString("peer", $"agent-worker-{smallStore.Backend}");
            json.WriteNumber("small", small);
            json.WriteNumber("large", large);
            json.WriteNumber("ops", ops);
            json.WriteNumber("rounds", rounds);
            json.WriteNumber("fill_per_s", Math.Round(fillPerSecond));
            foreach (var op in new[] { "enqueue", "lease", "complete" })
            {
                json.WriteNumber($"{op}_us_small", Math.Round(Median($"{op}-small"), 1));
                json.WriteNumber($"{op}_us_large", Math.Round(Median($"{op}-large"), 1));
                json.WriteNumber($"{op}_ratio", Math.Round(Median($"{op}-large") / Median($"{op}-small"), 3));
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static async Task FillAsync(IJobQueue queue, string level, int count, CancellationToken cancellationToken)
    {
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, FillConcurrency).Select(_ => Task.Run(
            async () =>
            {
                int mine;
                while ((mine = Interlocked.Increment(ref next)) < count)
                {
                    await queue.EnqueueAsync(QueueBench.Noop($"fill-{level}-{mine}"), cancellationToken);
                    if ((mine + 1) % 100_000 == 0)
                        await Console.Error.WriteLineAsync($"scale: {level}: {mine + 1} of {count} queued ({(mine + 1) / clock.Elapsed.TotalSeconds:F0}/s)");
                }
            },
            cancellationToken)));
    }

    private static async Task MeasureRoundAsync(IJobQueue queue, string level, int round, int ops, Dictionary<string, List<double>> samples, CancellationToken cancellationToken)
    {
        List<double> Samples(string key) => samples.TryGetValue(key, out var list) ? list : samples[key] = [];
        var enqueue = Samples($"enqueue-{level}");
        var lease = Samples($"lease-{level}");
        var complete = Samples($"complete-{level}");
        for (var i = 0; i < ops; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await queue.EnqueueAsync(QueueBench.Noop($"measure-{level}-{round}-{i}"), cancellationToken);
            enqueue.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }
        for (var i = 0; i < ops; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var leased = await queue.LeaseAsync("scale", TimeSpan.Zero, cancellationToken)
                ?? throw new InvalidOperationException($"scale: the {level} queue ran dry");
            lease.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            await using (leased)
            {
                start = Stopwatch.GetTimestamp();
                await leased.CompleteAsync(new JobResult(), cancellationToken);
                complete.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            }
        }
    }
}
