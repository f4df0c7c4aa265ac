using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Tests.Queue;
using Microsoft.Extensions.Time.Testing;

namespace AgentWorker.Core.Tests.Pipeline;

public sealed class EventWriterTests
{
    private readonly OutageQueue _queue = new();

    // The fake clock never fires the periodic flush: the tests flush by hand.
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public async Task FlushAsync_BackendDown_KeepsTheEvents_AndWritesThemInOrderOnceItIsBack()
    {
        await using var writer = new EventWriter(_queue, "job-1", 1, _time);
        await writer.AddAsync(Line("one"));
        _queue.Down = true;

        await Assert.ThrowsAsync<BackendDownException>(() => writer.FlushAsync(CancellationToken.None));
        await writer.AddAsync(Line("two"));
        _queue.Down = false;
        await writer.FlushAsync(CancellationToken.None);

        Assert.Equal(["one", "two"], _queue.Appended.Select(e => e.Message));
    }

    [Fact]
    public async Task AddAsync_BackendDown_NeverThrowsAtTheAgentsOutput()
    {
        await using var writer = new EventWriter(_queue, "job-1", 1, _time);
        _queue.Down = true;

        // Enough lines to fill several batches, each of which would trigger a flush.
        for (var i = 0; i < 1000; i++)
            await writer.AddAsync(Line($"line {i}"));
        _queue.Down = false;
        await writer.FlushAsync(CancellationToken.None);

        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"line {i}"), _queue.Appended.Select(e => e.Message));
    }

    [Fact]
    public async Task AddAsync_LongOutage_KeepsTheNewestTenThousand_AndSaysHowManyWereDropped()
    {
        await using var writer = new EventWriter(_queue, "job-1", 1, _time);
        _queue.Down = true;
        for (var i = 0; i < 10_300; i++)
            await writer.AddAsync(Line($"line {i}"));
        await Assert.ThrowsAsync<BackendDownException>(() => writer.FlushAsync(CancellationToken.None));
        _queue.Down = false;

        await writer.FlushAsync(CancellationToken.None);

        var messages = _queue.Appended.Select(e => e.Message).ToList();
        Assert.Equal("[agent-worker: 300 event(s) dropped while the queue backend was unreachable]", messages[0]);
        Assert.Equal(Enumerable.Range(300, 10_000).Select(i => $"line {i}"), messages.Skip(1));
    }

    private static NewJobEvent Line(string text) => new(JobEventKind.Log, text, "stdout");
}
