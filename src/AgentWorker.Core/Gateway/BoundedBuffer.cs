namespace AgentWorker.Core.Gateway;

/// <summary>
/// A growable byte buffer that refuses to grow past a cap, so what <see cref="UsageReader"/> keeps of a response is
/// bounded whatever the upstream sends; it starts empty and grows by doubling, so small payloads stay small.
/// </summary>
internal sealed class BoundedBuffer(int capacity)
{
    private const int MinimumSize = 256;

    private byte[] _bytes = [];

    public int Length { get; private set; }

    public ReadOnlySpan<byte> Span => _bytes.AsSpan(0, Length);

    /// <summary>Appends <paramref name="data"/>, or returns false and appends nothing when the cap would be passed.</summary>
    public bool TryAppend(ReadOnlySpan<byte> data)
    {
        if (data.Length > capacity - Length)
            return false;
        var needed = Length + data.Length;
        if (needed > _bytes.Length)
            Array.Resize(ref _bytes, (int)Math.Min(capacity, Math.Max(needed, Math.Max(MinimumSize, 2L * _bytes.Length))));
        data.CopyTo(_bytes.AsSpan(Length));
        Length = needed;
        return true;
    }

    public void Clear() => Length = 0;

    /// <summary>Empties the buffer and lets go of its memory, for when it will not be needed again.</summary>
    public void Release()
    {
        _bytes = [];
        Length = 0;
    }
}
