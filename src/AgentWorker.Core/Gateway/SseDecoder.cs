namespace AgentWorker.Core.Gateway;

/// <summary>
/// Splits a <c>text/event-stream</c> body into the data of its events, as the WHATWG server-sent events rules read it:
/// lines end in CRLF, LF or CR (a CRLF split across writes is one end), <c>:</c> starts a comment, an event's
/// <c>data:</c> lines are joined with "\n" and the event ends at a blank line. Chunks may end at any byte. Memory is
/// bounded: a line longer than the cap is dropped as it streams past, and so is an event whose data would pass it.
/// </summary>
internal sealed class SseDecoder(int maxLineBytes, SseDecoder.DataHandler onData)
{
    /// <summary>Receives one event's data; the span is only valid during the call.</summary>
    public delegate void DataHandler(ReadOnlySpan<byte> data);

    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    private readonly BoundedBuffer _line = new(maxLineBytes);
    private readonly BoundedBuffer _data = new(maxLineBytes);
    private bool _lineTooLong;
    private bool _afterCr;
    private bool _firstLine = true;
    private bool _hasData;
    private bool _dataTooLarge;

    public void Write(ReadOnlySpan<byte> chunk)
    {
        while (!chunk.IsEmpty)
        {
            if (_afterCr)
            {
                _afterCr = false;
                if (chunk[0] == (byte)'\n')
                {
                    chunk = chunk[1..];
                    continue;
                }
            }
            var end = chunk.IndexOfAny((byte)'\r', (byte)'\n');
            if (end < 0)
            {
                AppendPartial(chunk);
                return;
            }
            EndLine(chunk[..end]);
            _afterCr = chunk[end] == (byte)'\r';
            chunk = chunk[(end + 1)..];
        }
    }

    /// <summary>The body ended: a last line without its line end and an event without its blank line still count.</summary>
    public void Finish()
    {
        if (_line.Length > 0 || _lineTooLong)
            EndLine([]);
        Dispatch();
        _line.Release();
        _data.Release();
    }

    private void AppendPartial(ReadOnlySpan<byte> part)
    {
        if (!_lineTooLong && !_line.TryAppend(part))
        {
            _lineTooLong = true;
            _line.Clear();
        }
    }

    private void EndLine(ReadOnlySpan<byte> rest)
    {
        var buffered = _line.Length > 0;
        var whole = !_lineTooLong && (buffered ? _line.TryAppend(rest) : rest.Length <= maxLineBytes);
        if (whole)
            ProcessLine(buffered ? _line.Span : rest);
        _firstLine = false;
        _line.Clear();
        _lineTooLong = false;
    }

    private void ProcessLine(ReadOnlySpan<byte> line)
    {
        if (_firstLine && line.StartsWith(Bom))
            line = line[Bom.Length..];
        if (line.IsEmpty)
        {
            Dispatch();
            return;
        }
        if (line[0] == (byte)':')
            return;
        var colon = line.IndexOf((byte)':');
        var name = colon < 0 ? line : line[..colon];
        if (!name.SequenceEqual("data"u8))
            return;
        var value = colon < 0 ? [] : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ')
            value = value[1..];
        AppendData(value);
    }

    private void AppendData(ReadOnlySpan<byte> value)
    {
        if (_dataTooLarge)
            return;
        if ((_hasData && !_data.TryAppend("\n"u8)) || !_data.TryAppend(value))
        {
            _dataTooLarge = true;
            _data.Clear();
        }
        _hasData = true;
    }

    private void Dispatch()
    {
        if (_hasData && !_dataTooLarge)
            onData(_data.Span);
        _data.Clear();
        _hasData = false;
        _dataTooLarge = false;
    }
}
