using AgentWorker.Core.Queue;

namespace AgentWorker.Core.Tests.Queue;

public sealed class BatcherTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task RunAsync_Alone_SendsAtOnceInABatchOfOne()
    {
        var server = new Server();
        var batcher = new Batcher<int, string>(server.ExecuteAsync);

        var first = batcher.RunAsync(1, CancellationToken.None);
        server.Answer();

        Assert.Equal("1", await first.WaitAsync(Deadline));
        Assert.Equal([[1]], server.Batches);
    }

    [Fact]
    public async Task RunAsync_WhileABatchIsOut_GoesWithTheOthersInTheNextOneAndEachGetsItsOwnResult()
    {
        var server = new Server();
        var batcher = new Batcher<int, string>(server.ExecuteAsync);
        var first = batcher.RunAsync(1, CancellationToken.None);

        var later = Enumerable.Range(2, 5).Select(n => batcher.RunAsync(n, CancellationToken.None)).ToList();
        Assert.False(later.Any(task => task.IsCompleted), "answered before its batch was sent");
        server.Answer();
        await first.WaitAsync(Deadline);
        server.Answer();

        Assert.Equal(["2", "3", "4", "5", "6"], await Task.WhenAll(later).WaitAsync(Deadline));
        Assert.Equal([[1], [2, 3, 4, 5, 6]], server.Batches);
    }

    [Fact]
    public async Task RunAsync_MoreThanMaxBatchWaiting_SplitsThemInOrder()
    {
        var server = new Server();
        var batcher = new Batcher<int, string>(server.ExecuteAsync, maxBatch: 2);
        var first = batcher.RunAsync(0, CancellationToken.None);
        var later = Enumerable.Range(1, 5).Select(n => batcher.RunAsync(n, CancellationToken.None)).ToList();

        for (var i = 0; i < 4; i++)
            server.Answer();

        await Task.WhenAll(later.Prepend(first)).WaitAsync(Deadline);
        Assert.Equal([[0], [1, 2], [3, 4], [5]], server.Batches);
    }

    [Fact]
    public async Task RunAsync_BatchFails_EveryCallerOfThatBatchGetsTheErrorAndTheNextBatchStillGoes()
    {
        var server = new Server();
        var batcher = new Batcher<int, string>(server.ExecuteAsync);
        var first = batcher.RunAsync(1, CancellationToken.None);
        var second = batcher.RunAsync(2, CancellationToken.None);
        var third = batcher.RunAsync(3, CancellationToken.None);

        server.Answer();
        await first.WaitAsync(Deadline);
        server.Fail(new InvalidOperationException("connection lost"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => second.WaitAsync(Deadline));
        await Assert.ThrowsAsync<InvalidOperationException>(() => third.WaitAsync(Deadline));
        var fourth = batcher.RunAsync(4, CancellationToken.None);
        server.Answer();

        Assert.Equal("4", await fourth.WaitAsync(Deadline));
    }

    [Fact]
    public async Task RunAsync_CancelledBeforeItsBatchIsSent_IsNeverSent()
    {
        var server = new Server();
        var batcher = new Batcher<int, string>(server.ExecuteAsync);
        var first = batcher.RunAsync(1, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = batcher.RunAsync(2, cancel.Token);
        var kept = batcher.RunAsync(3, CancellationToken.None);

        await cancel.CancelAsync();
        server.Answer();
        server.Answer();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Deadline));
        Assert.Equal("3", await kept.WaitAsync(Deadline));
        Assert.Equal([[1], [3]], server.Batches);
    }

    /// <summary>Holds every batch until the test answers it, so the test decides what waits behind what.</summary>
    private sealed class Server
    {
        private readonly SemaphoreSlim answers = new(0);
        private readonly Queue<Exception?> outcomes = new();

        public List<int[]> Batches { get; } = [];

        public async Task<IReadOnlyList<string>> ExecuteAsync(IReadOnlyList<int> batch)
        {
            lock (Batches)
                Batches.Add([.. batch]);
            await answers.WaitAsync().WaitAsync(Deadline);
            Exception? failure;
            lock (outcomes)
                failure = outcomes.Dequeue();
            return failure is null ? [.. batch.Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))] : throw failure;
        }

        public void Answer() => Release(null);

        public void Fail(Exception error) => Release(error);

        private void Release(Exception? outcome)
        {
            lock (outcomes)
                outcomes.Enqueue(outcome);
            answers.Release();
        }
    }
}
