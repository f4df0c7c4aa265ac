using System.Text;
using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

public sealed class SseDecoderTests
{
    [Fact]
    public void LineEnds_LfCrLfAndCr_AllEndLines() =>
        AssertEvents("data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n", ["a", "b", "c", "d"]);

    [Fact]
    public void CrLf_IsOneLineEnd_EvenSplitAcrossWrites() =>
        AssertEvents("data: a\r\ndata: b\r\n\r\n", ["a\nb"]);

    [Fact]
    public void DataLines_JoinedWithLf_OneLeadingSpaceRemoved() =>
        AssertEvents("data:x\ndata:  y\ndata\n\n", ["x\n y\n"]);

    [Fact]
    public void CommentsAndOtherFields_Ignored() =>
        AssertEvents(": ping\nevent: message_delta\nid: 7\nretry: 1000\ndata: z\n: after\n\nevent: lonely\n\n", ["z"]);

    [Fact]
    public void LeadingBom_Stripped() =>
        AssertEvents("\uFEFFdata: a\n\n", ["a"]);

    [Fact]
    public void LineOverTheCap_DroppedWhateverTheChunking()
    {
        // Both lines carry data that would fit; only the second line as a whole (16 bytes) does.
        var body = "data: 123456789012\n\ndata: 1234567890\n\n";
        foreach (var (_, chunks) in Chunking.Ways(Encoding.UTF8.GetBytes(body)).Concat(Chunking.EveryCut(Encoding.UTF8.GetBytes(body))))
            Assert.Equal(["1234567890"], Decode(chunks, maxLineBytes: 16));
    }

    private static void AssertEvents(string body, string[] expected)
    {
        foreach (var (how, chunks) in Chunking.Ways(Encoding.UTF8.GetBytes(body)).Concat(Chunking.EveryCut(Encoding.UTF8.GetBytes(body))))
            Assert.True(expected.SequenceEqual(Decode(chunks, maxLineBytes: 1024)), how);
    }

    private static List<string> Decode(byte[][] chunks, int maxLineBytes)
    {
        var events = new List<string>();
        var decoder = new SseDecoder(maxLineBytes, data => events.Add(Encoding.UTF8.GetString(data)));
        foreach (var chunk in chunks)
            decoder.Write(chunk);
        decoder.Finish();
        return events;
    }
}
