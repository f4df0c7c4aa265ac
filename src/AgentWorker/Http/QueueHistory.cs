using AgentWorker.Core.Queue;

namespace AgentWorker.Http;

/// <summary>The queue's counts at one moment.</summary>
internal sealed record QueueSample(DateTimeOffset At, long Queued, long Running, long Retrying, long Succeeded, long Failed, long Cancelled, long TimedOut, long Dead);

/// <summary>Samples oldest first, taken every <see cref="IntervalSeconds"/> since the process started (the last hour at most).</summary>
internal sealed record QueueHistoryView(int IntervalSeconds, IReadOnlyList<QueueSample> Samples);

/// <summary>
/// Samples the queue-wide counts (every worker sharing the store, not only this process) every <see cref="Interval"/>
/// and keeps the last <see cref="Capacity"/> samples in memory, so the dashboard can draw them over time.
/// </summary>
internal sealed partial class QueueHistory(IJobQueue queue, TimeProvider time, ILogger<QueueHistory> logger, int capacity = QueueHistory.Capacity) : BackgroundService
{
    public const int Capacity = 720;
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly Queue<QueueSample> _samples = new();
    private readonly Lock _lock = new();

    public IReadOnlyList<QueueSample> Samples
    {
        get
        {
            lock (_lock)
                return [.. _samples];
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            await SampleAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task SampleAsync(CancellationToken cancellationToken)
    {
        QueueStats stats;
        try
        {
            stats = await queue.GetStatsAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A backend outage leaves a gap in the chart; /health says why.
            LogSampleFailed(logger, queue.Backend, e.Message);
            return;
        }
        var sample = new QueueSample(time.GetUtcNow(), stats.Queued, stats.Running, stats.Retrying, stats.Succeeded, stats.Failed, stats.Cancelled, stats.TimedOut, stats.Dead);
        lock (_lock)
        {
            _samples.Enqueue(sample);
            while (_samples.Count > capacity)
                _samples.Dequeue();
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Queue history: {Backend} counts not sampled: {Error}")]
    private static partial void LogSampleFailed(ILogger logger, string backend, string error);
}

internal static class QueueHistoryApi
{
    public static IServiceCollection AddQueueHistory(this IServiceCollection services)
    {
        services.AddSingleton<QueueHistory>();
        return services.AddHostedService(s => s.GetRequiredService<QueueHistory>());
    }

    public static void MapQueueHistory(this IEndpointRouteBuilder app, string? apiKey) =>
        app.MapGroup("").RequireBearer(apiKey).WithTags("stats")
            .MapGet("/v1/stats/history", (QueueHistory history) =>
                TypedResults.Ok(new QueueHistoryView((int)QueueHistory.Interval.TotalSeconds, history.Samples)))
            .WithSummary("Queue counts over time")
            .WithDescription("Counts by state across every worker sharing the store, sampled every 5 s by this process since it started; the last hour is kept.");
}
