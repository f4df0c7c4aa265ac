namespace AgentWorker.Core.Gateway;

/// <summary>
/// Replaces a secret in a byte stream with as many <c>*</c>, so a vendor's answer that quotes the real key (an
/// "incorrect API key" error, an echo) reaches the agent without it; the length stays, so a Content-Length stays true.
/// Only a tail that could be the start of the secret is held back for the next chunk, so a stream's events still pass
/// at once.
/// </summary>
public sealed class SecretMask(string? secret)
{
    private readonly byte[] _secret = secret is { Length: >= 4 } ? System.Text.Encoding.UTF8.GetBytes(secret) : [];
    private byte[] _buffer = [];
    private int _held;

    /// <summary>What of <paramref name="chunk"/> (with what was held back) may be sent now, masked.</summary>
    public ReadOnlyMemory<byte> Write(ReadOnlySpan<byte> chunk)
    {
        if (_secret.Length == 0)
            return chunk.ToArray();
        if (_buffer.Length < _held + chunk.Length)
            Array.Resize(ref _buffer, Math.Max(_held + chunk.Length, _buffer.Length * 2));
        chunk.CopyTo(_buffer.AsSpan(_held));
        var length = _held + chunk.Length;
        var pending = _buffer.AsSpan(0, length);
        for (var at = pending.IndexOf(_secret); at >= 0; at = pending.IndexOf(_secret))
            pending.Slice(at, _secret.Length).Fill((byte)'*');
        _held = HeldBack(pending);
        var ready = pending[..(length - _held)].ToArray();
        pending[(length - _held)..].CopyTo(_buffer);
        return ready;
    }

    /// <summary>The held-back tail at the end of the stream: it was not the secret.</summary>
    public ReadOnlyMemory<byte> Flush()
    {
        var rest = _buffer.AsSpan(0, _held).ToArray();
        _held = 0;
        return rest;
    }

    /// <summary>The longest end of <paramref name="pending"/> that the secret starts with (shorter than the secret).</summary>
    private int HeldBack(ReadOnlySpan<byte> pending)
    {
        for (var length = Math.Min(_secret.Length - 1, pending.Length); length > 0; length--)
        {
            if (pending[^length..].SequenceEqual(_secret.AsSpan(0, length)))
                return length;
        }
        return 0;
    }

    /// <summary><paramref name="text"/> with the secret masked (a header's value).</summary>
    public string Mask(string text) =>
        _secret.Length == 0 ? text : text.Replace(System.Text.Encoding.UTF8.GetString(_secret), new string('*', _secret.Length), StringComparison.Ordinal);
}
