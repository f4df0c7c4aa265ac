using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Http;
using AgentWorker.Storage.Sqlite;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace AgentWorker.Tests.Http;

public sealed class QueueHistoryTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("aw-history");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private IJobQueue _queue = null!;

    public async Task InitializeAsync() =>
        _queue = await SqliteJobQueue.OpenAsync(_dir.Combine("queue.db"), new QueueOptions(), _time, CancellationToken.None);

    private Task<IReadOnlyList<QueueSample>> SamplesAsync(QueueHistory history, int count) =>
        Eventually.UntilAsync(() => Task.FromResult(history.Samples), s => s.Count >= count, TimeSpan.FromSeconds(10), $"{count} samples");

    [Fact]
    public async Task Sampling_EveryInterval_RecordsTheQueueAsItChanges()
    {
        using var history = new QueueHistory(_queue, _time, NullLogger<QueueHistory>.Instance);
        await history.StartAsync(CancellationToken.None);
        await SamplesAsync(history, 1);

        await _queue.EnqueueAsync(new JobSpec { Id = "h1", Agent = "a", Repo = new RepoRef("/srv/r") }, CancellationToken.None);
        _time.Advance(QueueHistory.Interval);
        var samples = await SamplesAsync(history, 2);

        Assert.Equal((0, _time.GetUtcNow() - QueueHistory.Interval), (samples[0].Queued, samples[0].At));
        Assert.Equal((1, _time.GetUtcNow()), (samples[1].Queued, samples[1].At));
        await history.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Sampling_PastCapacity_KeepsTheNewest()
    {
        using var history = new QueueHistory(_queue, _time, NullLogger<QueueHistory>.Instance, capacity: 3);
        await history.StartAsync(CancellationToken.None);
        await SamplesAsync(history, 1);

        for (var tick = 1; tick <= 4; tick++)
        {
            _time.Advance(QueueHistory.Interval);
            await Eventually.UntilAsync(() => history.Samples.Count > 0 && history.Samples[^1].At == _time.GetUtcNow(), TimeSpan.FromSeconds(10), $"sample {tick}");
        }

        var samples = history.Samples;
        Assert.Equal(3, samples.Count);
        Assert.Equal([_time.GetUtcNow() - (2 * QueueHistory.Interval), _time.GetUtcNow() - QueueHistory.Interval, _time.GetUtcNow()], samples.Select(s => s.At));
        await history.StopAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _queue.DisposeAsync();
        _dir.Dispose();
    }
}
