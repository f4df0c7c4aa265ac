using Polly;
using Polly.Retry;

namespace AgentWorker.Core.Queue;

/// <summary>
/// Queue calls that ride out a backend outage (Polly retry with exponential backoff and jitter). Only failures
/// <see cref="BackendHealth.IsUnavailable"/> recognises are repeated; a bad request or a bug fails at once.
/// Every failure and every answer is reported to <see cref="BackendHealth"/>.
/// </summary>
public sealed class BackendRetry
{
    /// <summary>First wait after a failed call; the waits double (with jitter) up to <see cref="MaxDelay"/>.</summary>
    public static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between tries, so a worker is back at work within this long after the backend is.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    // An HTTP client waits for an answer: a few quick tries, each bounded, then the caller answers 503.
    private const int QuickRetries = 2;
    private static readonly TimeSpan QuickAttemptTimeout = TimeSpan.FromSeconds(2);

    private readonly BackendHealth _health;
    private readonly ResiliencePipeline _untilAvailable;
    private readonly ResiliencePipeline _quick;

    public BackendRetry(BackendHealth health, TimeProvider timeProvider)
    {
        _health = health;
        _untilAvailable = new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(Retry(int.MaxValue))
            .Build();
        _quick = new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(Retry(QuickRetries))
            .AddTimeout(QuickAttemptTimeout)
            .Build();
    }

    /// <summary>
    /// Runs <paramref name="call"/> until it gets an answer from the backend, waiting out an outage of any length;
    /// only <paramref name="cancellationToken"/> (shutdown) ends the wait early.
    /// </summary>
    public Task<T> UntilAvailableAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken) =>
        RunAsync(_untilAvailable, call, cancellationToken);

    /// <inheritdoc cref="UntilAvailableAsync{T}"/>
    public Task UntilAvailableAsync(Func<CancellationToken, Task> call, CancellationToken cancellationToken) =>
        RunAsync(_untilAvailable, async token => { await call(token).ConfigureAwait(false); return true; }, cancellationToken);

    /// <summary>
    /// Runs <paramref name="call"/> with a few quick tries (each at most 2 s) for a caller that is waiting, e.g. an
    /// HTTP request; throws the last failure when the backend stays unavailable.
    /// </summary>
    public Task<T> QuicklyAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken) =>
        RunAsync(_quick, call, cancellationToken);

    private async Task<T> RunAsync<T>(ResiliencePipeline pipeline, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            var result = await pipeline.ExecuteAsync(static async (call, token) => await call(token).ConfigureAwait(false), call, cancellationToken)
                .ConfigureAwait(false);
            _health.ReportUp();
            return result;
        }
        catch (Exception e) when (_health.IsUnavailable(e))
        {
            // The last try's failure: the retries' own were reported as they happened.
            _health.ReportDown(e);
            throw;
        }
    }

    private RetryStrategyOptions Retry(int attempts) => new()
    {
        ShouldHandle = new PredicateBuilder().Handle<Exception>(_health.IsUnavailable),
        MaxRetryAttempts = attempts,
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = FirstDelay,
        MaxDelay = MaxDelay,
        OnRetry = args =>
        {
            if (args.Outcome.Exception is { } failure)
                _health.ReportDown(failure);
            return default;
        },
    };
}
