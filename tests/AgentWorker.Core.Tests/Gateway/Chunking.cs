namespace AgentWorker.Core.Tests.Gateway;

/// <summary>The ways a body can arrive: whole, a byte at a time, in random pieces (fixed seeds) and cut in two at every byte.</summary>
internal static class Chunking
{
    private static readonly int[] Seeds = [1, 2, 3, 5, 8, 13, 21, 34];

    public static IEnumerable<(string How, byte[][] Chunks)> Ways(byte[] body)
    {
        yield return ("whole", [body]);
        yield return ("byte at a time", [.. body.Select(b => new[] { b })]);
        foreach (var seed in Seeds)
            yield return ($"seed {seed}", RandomPieces(body, new Random(seed)));
    }

    public static IEnumerable<(string How, byte[][] Chunks)> EveryCut(byte[] body) =>
        Enumerable.Range(0, body.Length + 1).Select(cut => ($"cut at {cut}", new[] { body[..cut], body[cut..] }));

    private static byte[][] RandomPieces(byte[] body, Random random)
    {
        var pieces = new List<byte[]>();
        for (var at = 0; at < body.Length;)
        {
            var size = Math.Min(body.Length - at, random.Next(1, 64));
            pieces.Add(body[at..(at + size)]);
            at += size;
        }
        return [.. pieces];
    }
}
