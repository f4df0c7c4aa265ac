namespace AgentWorker.Core.Sinks;

/// <summary>
/// Somewhere a job's state changes are delivered after the queue recorded them (a webhook, a results table).
/// <see cref="JobNotifier"/> calls it, retries it and logs every try in the job's events; a sink never holds up a job
/// and a failing one never loses the job's result, which is already stored.
/// </summary>
public interface IJobSink
{
    /// <summary>How the delivery log names this sink; never contains a secret (e.g. <c>webhook https://hooks.example:443</c>).</summary>
    string Name { get; }

    /// <summary>Whether this sink wants <paramref name="notice"/> (a results table takes only final states).</summary>
    bool Accepts(JobNotice notice);

    /// <summary>Delivers once. A <see cref="SinkException"/> that is not transient is not retried; any other failure is.</summary>
    Task DeliverAsync(JobNotice notice, CancellationToken cancellationToken);
}

/// <summary>A delivery failed; <see cref="Transient"/> failures are retried, after <see cref="RetryAfter"/> when the receiver said so.</summary>
public sealed class SinkException(string message, bool transient, TimeSpan? retryAfter = null) : Exception(message)
{
    public bool Transient { get; } = transient;
    public TimeSpan? RetryAfter { get; } = retryAfter;
}
