using System.Text;
using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

/// <summary>The real key masked in a vendor's answer however the answer is cut into chunks, without holding a stream back.</summary>
public sealed class SecretMaskTests
{
    private const string Key = "sk-real-0123456789abcdef";

    private static string Pass(string text, IEnumerable<int> cuts)
    {
        var mask = new SecretMask(Key);
        var bytes = Encoding.UTF8.GetBytes(text);
        var output = new List<byte>();
        var at = 0;
        foreach (var cut in cuts.Append(bytes.Length))
        {
            output.AddRange(mask.Write(bytes.AsSpan(at, cut - at)).ToArray());
            at = cut;
        }
        output.AddRange(mask.Flush().ToArray());
        return Encoding.UTF8.GetString([.. output]);
    }

    [Fact]
    public void EveryChunking_MasksEveryOccurrence_AndKeepsTheLength()
    {
        var text = "{\"error\":{\"message\":\"Incorrect API key provided: " + Key + ". Twice: " + Key + Key + "; sk-real-01 is not it\"}}";
        var expected = text.Replace(Key, new string('*', Key.Length), StringComparison.Ordinal);
        var random = new Random(17);
        for (var round = 0; round < 500; round++)
        {
            var cuts = Enumerable.Range(0, random.Next(0, 12)).Select(_ => random.Next(0, text.Length + 1)).Order().ToList();
            Assert.Equal(expected, Pass(text, cuts));
        }
        Assert.Equal(expected, Pass(text, Enumerable.Range(1, text.Length - 1)));
        Assert.Equal(text.Length, expected.Length);
    }

    [Fact]
    public void AnEventNotEndingLikeTheKey_IsPassedWhole_AtOnce()
    {
        var mask = new SecretMask(Key);

        Assert.Equal("data: {}\n\n", Encoding.UTF8.GetString(mask.Write("data: {}\n\n"u8).Span));
        // Only a possible start of the key waits for the next chunk.
        Assert.Equal("data: ", Encoding.UTF8.GetString(mask.Write("data: sk-re"u8).Span));
        Assert.Equal("sk-reX\n\n", Encoding.UTF8.GetString(mask.Write("X\n\n"u8).Span));
    }

    [Fact]
    public void NoKey_PassesEverything() => Assert.Equal("sk-anything", Encoding.UTF8.GetString(new SecretMask(null).Write("sk-anything"u8).Span));

    [Fact]
    public void HeaderValue_IsMasked() => Assert.Equal($"Bearer {new string('*', Key.Length)}", new SecretMask(Key).Mask($"Bearer {Key}"));
}
