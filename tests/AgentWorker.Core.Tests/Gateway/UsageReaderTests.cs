using System.Text;
using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

public sealed class UsageReaderTests
{
    [Fact]
    public void OpenAiChatJson_PromptTokensIncludeCached() =>
        AssertEveryWay(eventStream: false, VendorPayloads.OpenAiChatJson, ("gpt-4o-2024-08-06", new TokenUsage(1117, 46, 1024)));

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void OpenAiChatStream_UsageFromTheFinalChunk(string newline) =>
        AssertEveryWay(eventStream: true, VendorPayloads.OpenAiChatStream(newline), ("gpt-4o-mini-2024-07-18", new TokenUsage(2006, 12, 1920)));

    [Fact]
    public void OpenAiChatStream_WithoutIncludeUsage_ModelButNoUsage() =>
        AssertEveryWay(eventStream: true, VendorPayloads.OpenAiChatStreamWithoutUsage, ("gpt-4o-mini-2024-07-18", null));

    [Fact]
    public void OpenAiResponsesJson_InputTokensIncludeCached() =>
        AssertEveryWay(eventStream: false, VendorPayloads.OpenAiResponsesJson, ("gpt-4.1-2025-04-14", new TokenUsage(328, 52, 256)));

    [Fact]
    public void OpenAiResponsesStream_UsageFromResponseCompleted() =>
        AssertEveryWay(eventStream: true, VendorPayloads.OpenAiResponsesStream, ("gpt-4.1-2025-04-14", new TokenUsage(37, 11, 0)));

    [Fact]
    public void AnthropicJson_CacheReadsAndWritesAreInput() =>
        AssertEveryWay(eventStream: false, VendorPayloads.AnthropicJson, ("claude-sonnet-4-20250514", new TokenUsage(12 + 100 + 2000, 6, 2000)));

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void AnthropicStream_InputFromMessageStart_CumulativeOutputFromMessageDelta(string newline) =>
        AssertEveryWay(eventStream: true, VendorPayloads.AnthropicStream(newline), ("claude-sonnet-4-20250514", new TokenUsage(25 + 1500 + 3000, 15, 3000)));

    [Fact]
    public void AnthropicStream_MessageDeltaRepeatingInput_LastValueWins()
    {
        var body = VendorPayloads.Sse("\n",
            "event: message_start",
            """data: {"type":"message_start","message":{"model":"claude-opus-4-1-20250805","usage":{"input_tokens":10,"cache_read_input_tokens":0,"output_tokens":1}}}""",
            "",
            "event: message_delta",
            """data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":40,"cache_creation_input_tokens":0,"cache_read_input_tokens":200,"output_tokens":90}}""",
            "");
        AssertEveryWay(eventStream: true, body, ("claude-opus-4-1-20250805", new TokenUsage(240, 90, 200)));
    }

    [Fact]
    public void EveryCutOfEachStream_SameAnswer()
    {
        (byte[] Body, (string?, TokenUsage?) Expected)[] streams =
        [
            (VendorPayloads.OpenAiChatStream("\r\n"), ("gpt-4o-mini-2024-07-18", new TokenUsage(2006, 12, 1920))),
            (VendorPayloads.OpenAiResponsesStream, ("gpt-4.1-2025-04-14", new TokenUsage(37, 11, 0))),
            (VendorPayloads.AnthropicStream("\r\n"), ("claude-sonnet-4-20250514", new TokenUsage(4525, 15, 3000))),
        ];
        foreach (var (body, expected) in streams)
            Assert.All(Chunking.EveryCut(body), way => Assert.Equal(expected, Read(eventStream: true, way.Chunks)));
    }

    [Theory]
    [InlineData("json error", false)]
    [InlineData("stream error", true)]
    [InlineData("html", false)]
    [InlineData("empty", false)]
    [InlineData("empty stream", true)]
    [InlineData("json read as a stream", true)]
    public void ResponsesWithoutUsage_Null(string kind, bool eventStream)
    {
        var body = kind switch
        {
            "json error" => VendorPayloads.OpenAiError,
            "stream error" => VendorPayloads.AnthropicErrorStream,
            "html" => "<html><body>502 Bad Gateway</body></html>"u8.ToArray(),
            "json read as a stream" => VendorPayloads.OpenAiChatJson,
            _ => [],
        };
        AssertEveryWay(eventStream, body, (null, null));
    }

    [Theory]
    [InlineData("""{"model":"m","choices":[{"usage":{"prompt_tokens":5}}],"metadata":{"usage":{"prompt_tokens":7}},"x":{"message":{"usage":{"prompt_tokens":9}}}}""", "m", null)]
    [InlineData("""{"message":{"model":"outer","usage":{"input_tokens":1},"response":{"model":"inner","usage":{"input_tokens":999}}}}""", "outer", 1L)]
    public void UsageOnlyWhereVendorsPutIt(string json, string model, long? input) =>
        Assert.Equal((model, input is { } i ? new TokenUsage(i, 0, 0) : null), Read(eventStream: false, [Encoding.UTF8.GetBytes(json)]));

    [Fact]
    public void CutOffJsonBody_Null() =>
        Assert.Equal((null, null), Read(eventStream: false, [VendorPayloads.AnthropicJson[..^40]]));

    [Fact]
    public void UsageWithNullOrNegativeCounts_IgnoresThem() =>
        Assert.Equal(("m", new TokenUsage(7, 0, 0)),
            Read(eventStream: false, ["""{"model":"m","usage":{"prompt_tokens":7,"completion_tokens":null,"prompt_tokens_details":{"cached_tokens":-3}}}"""u8.ToArray()]));

    [Fact]
    public void JsonBody_UpToTheCapRead_PastItGivenUp()
    {
        var body = VendorPayloads.AnthropicJson;
        Assert.NotNull(Read(eventStream: false, Chunking.Ways(body).Last().Chunks, maxJsonBytes: body.Length).Usage);
        Assert.All(Chunking.Ways(body), way => Assert.Equal((null, null), Read(eventStream: false, way.Chunks, maxJsonBytes: body.Length - 1)));
    }

    [Fact]
    public void StreamLineOverTheCap_DroppedAndTheNextEventStillRead()
    {
        var padding = new string('x', 300);
        var body = VendorPayloads.Sse("\n",
            """data: {"model":"first","usage":{"prompt_tokens":1,"completion_tokens":5}}""",
            "",
            $$"""data: {"model":"huge","usage":{"prompt_tokens":1,"completion_tokens":99},"pad":"{{padding}}"}""",
            "",
            """data: {"usage":{"completion_tokens":6}}""",
            "");
        Assert.All(Chunking.Ways(body), way => Assert.Equal(("first", new TokenUsage(1, 6, 0)), Read(eventStream: true, way.Chunks, maxJsonBytes: 200)));
    }

    [Fact]
    public void StreamLastEventOverTheCap_Dropped()
    {
        var padding = new string('x', 300);
        var body = VendorPayloads.Sse("\n",
            """data: {"model":"first","usage":{"prompt_tokens":1,"completion_tokens":5}}""",
            "",
            $$"""data: {"model":"huge","usage":{"prompt_tokens":1,"completion_tokens":99},"pad":"{{padding}}"}""",
            "");
        Assert.All(Chunking.Ways(body), way => Assert.Equal(("first", new TokenUsage(1, 5, 0)), Read(eventStream: true, way.Chunks, maxJsonBytes: 200)));
    }

    [Fact]
    public void StreamEventOfShortLinesOverTheCap_Dropped()
    {
        var body = VendorPayloads.Sse("\n",
            """data: {"model":"first","usage":{"completion_tokens":5}}""",
            "",
            """data: {"model":"many-lines",""",
            """data: "usage":{"completion_tokens":99},""",
            $$"""data: "pad":"{{new string('x', 150)}}",""",
            $$"""data: "pad2":"{{new string('x', 150)}}"}""",
            "");
        Assert.All(Chunking.Ways(body), way => Assert.Equal(("first", new TokenUsage(0, 5, 0)), Read(eventStream: true, way.Chunks, maxJsonBytes: 200)));
    }

    [Fact]
    public void StreamDataOverSeveralLines_JoinedIntoOnePayload()
    {
        var body = VendorPayloads.Sse("\r\n",
            """data: {"model":"split-model",""",
            """data:"usage":{"input_tokens":3,""",
            """data:  "output_tokens":4}}""",
            "");
        Assert.All(Chunking.Ways(body), way => Assert.Equal(("split-model", new TokenUsage(3, 4, 0)), Read(eventStream: true, way.Chunks)));
    }

    [Fact]
    public void StreamEndingWithoutBlankLine_LastEventStillRead()
    {
        var body = Encoding.UTF8.GetBytes("""data: {"model":"m","usage":{"prompt_tokens":2,"completion_tokens":3}}""");
        Assert.All(Chunking.Ways(body), way => Assert.Equal(("m", new TokenUsage(2, 3, 0)), Read(eventStream: true, way.Chunks)));
    }

    [Fact]
    public void Complete_Twice_SameAnswer_WriteAfterwardsRefused()
    {
        var reader = new UsageReader(eventStream: false);
        reader.Write(VendorPayloads.OpenAiChatJson);
        var first = reader.Complete();
        Assert.Equal(first, reader.Complete());
        Assert.Throws<InvalidOperationException>(() => reader.Write("{}"u8));
    }

    private static void AssertEveryWay(bool eventStream, byte[] body, (string?, TokenUsage?) expected) =>
        Assert.All(Chunking.Ways(body), way => Assert.Equal(expected, Read(eventStream, way.Chunks)));

    private static (string? Model, TokenUsage? Usage) Read(bool eventStream, byte[][] chunks, int maxJsonBytes = 8 << 20)
    {
        var reader = new UsageReader(eventStream, maxJsonBytes);
        foreach (var chunk in chunks)
            reader.Write(chunk);
        return reader.Complete();
    }
}
