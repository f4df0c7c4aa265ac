namespace AgentWorker.Core.Gateway;

/// <summary>
/// Finds the model and token usage in one upstream response as its bytes pass through the gateway. It only observes:
/// the caller forwards every byte regardless, and a response this class cannot read (no usage, not JSON, larger than
/// the cap) simply yields nulls. A JSON body is kept up to <c>maxJsonBytes</c> and read once at the end; an event
/// stream is never kept whole, each event's data is read as it completes (a line or event over the cap is dropped).
/// One instance per response, written from one thread at a time.
/// </summary>
public sealed class UsageReader
{
    private readonly UsageFields _found = new();
    private readonly SseDecoder? _events;
    private readonly BoundedBuffer? _body;
    private bool _bodyTooLarge;
    private bool _completed;

    /// <param name="eventStream">The response's content type is <c>text/event-stream</c>.</param>
    /// <param name="maxJsonBytes">The most this reader keeps: the whole body for JSON, one line or event for a stream.</param>
    public UsageReader(bool eventStream, int maxJsonBytes = 8 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxJsonBytes);
        if (eventStream)
            _events = new SseDecoder(maxJsonBytes, OnEventData);
        else
            _body = new BoundedBuffer(maxJsonBytes);
    }

    /// <summary>Observes the next bytes of the (decoded) body; chunks may split lines and characters anywhere.</summary>
    public void Write(ReadOnlySpan<byte> chunk)
    {
        if (_completed)
            throw new InvalidOperationException("The response was already completed.");
        if (_events is not null)
            _events.Write(chunk);
        else if (!_bodyTooLarge && !_body!.TryAppend(chunk))
        {
            _bodyTooLarge = true;
            _body.Release();
        }
    }

    /// <summary>Model and usage found, either null when the response did not carry them. Calling it again returns the same.</summary>
    public (string? Model, TokenUsage? Usage) Complete()
    {
        if (!_completed)
        {
            _completed = true;
            if (_events is not null)
                _events.Finish();
            else if (!_bodyTooLarge)
            {
                UsageJson.Read(_body!.Span, _found);
                _body.Release();
            }
        }
        return (_found.Model, _found.ToUsage());
    }

    private void OnEventData(ReadOnlySpan<byte> data)
    {
        if (!data.SequenceEqual("[DONE]"u8))
            UsageJson.Read(data, _found);
    }
}
