using AgentWorker.Core.Execution;
using Microsoft.Extensions.Logging;
using Polly.Timeout;

namespace AgentWorker.Core.Queue;

/// <summary>
/// Whether the queue backend answers, as the process's latest calls found it. Worker slots, the HTTP intake and
/// the health probe report what they see; <c>/health</c> and <c>/ready</c> show it. Each change is logged once,
/// not every failed call: "unreachable" when an outage starts, "reachable again after N s" when it ends.
/// </summary>
public sealed partial class BackendHealth(IJobQueue queue, SecretRedactor redactor, TimeProvider timeProvider, ILogger<BackendHealth> logger)
{
    // Backend errors can be long (StackExchange.Redis lists its whole connection state); health shows the start.
    private const int MaxErrorLength = 300;

    private readonly Lock _gate = new();
    private BackendState _state = new(queue.Backend, Up: true, Error: null, DownSince: null, Outages: 0);

    public BackendState Current
    {
        get
        {
            lock (_gate)
                return _state;
        }
    }

    /// <summary>
    /// True when <paramref name="exception"/> says the backend cannot be reached right now (down, restarting, not
    /// answering in time), so the call is worth repeating once it is back; false for bad requests and bugs.
    /// </summary>
    public bool IsUnavailable(Exception exception) => exception is TimeoutRejectedException || queue.IsUnavailable(exception);

    /// <summary>A call failed because the backend is unavailable.</summary>
    public void ReportDown(Exception exception)
    {
        var error = Describe(exception);
        lock (_gate)
        {
            if (!_state.Up)
            {
                _state = _state with { Error = error };
                return;
            }
            _state = _state with { Up = false, Error = error, DownSince = timeProvider.GetUtcNow(), Outages = _state.Outages + 1 };
        }
        LogDown(logger, queue.Backend, error);
    }

    /// <summary>A call succeeded: the backend answers.</summary>
    public void ReportUp()
    {
        TimeSpan down;
        lock (_gate)
        {
            if (_state.Up)
                return;
            down = timeProvider.GetUtcNow() - _state.DownSince!.Value;
            _state = _state with { Up = true, Error = null, DownSince = null };
        }
        LogUp(logger, queue.Backend, down.TotalSeconds);
    }

    private string Describe(Exception exception)
    {
        var message = exception is TimeoutRejectedException ? "no answer in time" : exception.Message;
        message = redactor.Redact(message.ReplaceLineEndings(" "));
        return message.Length <= MaxErrorLength ? message : message[..MaxErrorLength] + "…";
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue backend {Backend} unreachable: {Error}; retrying with backoff")]
    private static partial void LogDown(ILogger logger, string backend, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Queue backend {Backend} reachable again after {Seconds:0.0}s")]
    private static partial void LogUp(ILogger logger, string backend, double seconds);
}

/// <param name="Name">The backend, e.g. <c>redis</c>.</param>
/// <param name="Up">False from the first call that found it unreachable until the next that got an answer.</param>
/// <param name="Error">Why the last call failed, while it is down.</param>
/// <param name="DownSince">When the current outage was first seen.</param>
/// <param name="Outages">Outages seen since the process started.</param>
public sealed record BackendState(string Name, bool Up, string? Error, DateTimeOffset? DownSince, int Outages);
