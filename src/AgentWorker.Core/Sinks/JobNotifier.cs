using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace AgentWorker.Core.Sinks;

/// <summary>
/// Delivers jobs' state changes to the configured sinks in the background: per job and sink in order, each delivery
/// retried with exponential backoff and jitter (Polly) and every try written to the job's delivery log (<c>sink</c>
/// events). Publishing never throws and never waits for a sink, so a slow or failing sink cannot hold up or lose a job.
/// </summary>
public sealed partial class JobNotifier : IDisposable
{
    private readonly IJobQueue _queue;
    private readonly IJobSink[] _sinks;
    private readonly SinkOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<JobNotifier> _logger;
    private readonly Dictionary<string, Task> _tails = new(StringComparer.Ordinal);
    // Never disposed: a delivery that is just starting may still read its token.
    private readonly CancellationTokenSource _stopping = new();

    public JobNotifier(IJobQueue queue, IEnumerable<IJobSink> sinks, SinkOptions options, TimeProvider timeProvider, ILogger<JobNotifier> logger)
    {
        _queue = queue;
        _sinks = [.. sinks];
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>Hands <paramref name="job"/>, in the state it was just stored in, to every sink that wants it; returns at once.</summary>
    public void Publish(JobRecord job)
    {
        if (_sinks.Length == 0)
            return;
        var notice = JobNotice.For(job, _timeProvider.GetUtcNow());
        for (var i = 0; i < _sinks.Length; i++)
        {
            var sink = _sinks[i];
            if (sink.Accepts(notice))
                Chain($"{i}\n{job.Id}", () => DeliverAsync(sink, notice));
        }
    }

    /// <summary>Reads the job as stored now and publishes it (for callers that changed it through the queue).</summary>
    public async Task PublishCurrentAsync(string jobId, CancellationToken cancellationToken)
    {
        if (_sinks.Length == 0)
            return;
        try
        {
            if (await _queue.GetAsync(jobId, cancellationToken).ConfigureAwait(false) is { } job)
                Publish(job);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogNotPublished(_logger, e, jobId);
        }
    }

    /// <summary>Waits up to <paramref name="deadline"/> for pending deliveries, then abandons the rest. Returns how many were abandoned.</summary>
    public async Task<int> DrainAsync(TimeSpan deadline)
    {
        Task[] pending;
        lock (_tails)
            pending = [.. _tails.Values];
        try
        {
            await Task.WhenAll(pending).WaitAsync(deadline, _timeProvider).ConfigureAwait(false);
            return 0;
        }
        catch (TimeoutException)
        {
            var left = pending.Count(t => !t.IsCompleted);
            LogAbandoning(_logger, left, deadline.TotalSeconds);
            await _stopping.CancelAsync().ConfigureAwait(false);
            // Each abandoned delivery still writes its last log line.
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5), _timeProvider).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return left;
        }
    }

    /// <summary>Abandons what is still pending (callers drain first).</summary>
    public void Dispose() => _stopping.Cancel();

    private void Chain(string key, Func<Task> delivery)
    {
        lock (_tails)
        {
            var previous = _tails.GetValueOrDefault(key) ?? Task.CompletedTask;
            var next = previous.ContinueWith(_ => delivery(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
            _tails[key] = next;
            _ = next.ContinueWith(done =>
            {
                lock (_tails)
                {
                    if (_tails.TryGetValue(key, out var tail) && tail == done)
                        _tails.Remove(key);
                }
            }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    private async Task DeliverAsync(IJobSink sink, JobNotice notice)
    {
        var attempts = 0;
        try
        {
            await Pipeline(sink, notice).ExecuteAsync(async cancellationToken =>
            {
                attempts++;
                await sink.DeliverAsync(notice, cancellationToken).ConfigureAwait(false);
            }, _stopping.Token).ConfigureAwait(false);
            await RecordAsync(notice, new DeliveryRecord(sink.Name, notice.Event, notice.DeliveryId, attempts, DeliveryRecord.Delivered)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            await RecordAsync(notice, new DeliveryRecord(sink.Name, notice.Event, notice.DeliveryId, attempts, DeliveryRecord.Abandoned, "the worker stopped before the delivery succeeded")).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogGaveUp(_logger, notice.Job.Id, notice.Event, sink.Name, attempts, e.Message);
            await RecordAsync(notice, new DeliveryRecord(sink.Name, notice.Event, notice.DeliveryId, attempts, DeliveryRecord.Failed, e.Message)).ConfigureAwait(false);
        }
    }

    private ResiliencePipeline Pipeline(IJobSink sink, JobNotice notice)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = _timeProvider };
        if (_options.MaxAttempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = _options.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _options.RetryBaseDelay,
                MaxDelay = _options.MaxRetryDelay,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException and not SinkException { Transient: false }),
                // A receiver's Retry-After (429, 503) wins over the backoff, within the longest delay.
                DelayGenerator = args => ValueTask.FromResult(args.Outcome.Exception is SinkException { RetryAfter: { } after }
                    ? (TimeSpan?)(after < _options.MaxRetryDelay ? after : _options.MaxRetryDelay)
                    : null),
                OnRetry = args => new ValueTask(RecordAsync(notice, new DeliveryRecord(sink.Name, notice.Event, notice.DeliveryId,
                    args.AttemptNumber + 1, DeliveryRecord.Retrying, args.Outcome.Exception?.Message, Math.Round(args.RetryDelay.TotalSeconds, 3)))),
            });
        }
        return builder.AddTimeout(_options.AttemptTimeout).Build();
    }

    /// <summary>Appends a line to the job's delivery log; when the store cannot take it, the worker's log has it.</summary>
    private async Task RecordAsync(JobNotice notice, DeliveryRecord record)
    {
        LogDelivery(_logger, notice.Job.Id, record.Event, record.Sink, record.Attempt, record.Outcome, record.Error);
        try
        {
            await _queue.AppendEventsAsync(notice.Job.Id, notice.Job.Attempts, [new NewJobEvent(JobEventKind.Sink, record.ToJson())], CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogNotRecorded(_logger, e, notice.Job.Id);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId}: {Event} to {Sink}, try {Attempt}: {Outcome} {Error}")]
    private static partial void LogDelivery(ILogger logger, string jobId, string @event, string sink, int attempt, string outcome, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: gave up delivering {Event} to {Sink} after {Attempts} tries: {Error}")]
    private static partial void LogGaveUp(ILogger logger, string jobId, string @event, string sink, int attempts, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: could not read the job to deliver its state change")]
    private static partial void LogNotPublished(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: could not write the delivery log")]
    private static partial void LogNotRecorded(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Abandoning {Pending} sink delivery chain(s) still pending after {Seconds}s")]
    private static partial void LogAbandoning(ILogger logger, int pending, double seconds);
}
