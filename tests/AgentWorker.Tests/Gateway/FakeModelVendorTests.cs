using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// The fake vendor on its own, called directly over TLS: the gateway tests compare what the worker recorded with what it
/// answered, so its answers must be the vendors' shapes with the usage it was told to report.
/// </summary>
public sealed class FakeModelVendorTests : IAsyncLifetime
{
    private readonly TestCertificateAuthority _authority = new();
    private FakeModelVendor _vendor = null!;
    private HttpClient _client = null!;

    private static readonly ModelReply Reply = new() { Content = "hello world", Model = "gpt-4o-2024-08-06", InputTokens = 120, OutputTokens = 30, CachedTokens = 10 };

    public async Task InitializeAsync()
    {
        _vendor = await FakeModelVendor.StartAsync(_authority, ["api.openai.com", "api.anthropic.com"], port: 0);
        _vendor.Answer = _ => Reply;
        // The names are pinned to the vendor as EGRESS_RESOLVE does; the certificate is checked against the test CA.
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(_vendor.Address, _vendor.Port, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 leaf && _authority.Trusts(leaf) },
        };
        _client = new HttpClient(handler);
    }

    private async Task<(HttpResponseMessage Response, string Body)> PostAsync(string url, JsonObject body, string header, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri($"https://{new Uri(url).Host}:{_vendor.Port}"), new Uri(url).PathAndQuery));
        request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        request.Headers.TryAddWithoutValidation(header, key);
        var response = await _client.SendAsync(request);
        return (response, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ChatCompletions_WholeAndStreamed_ReportTheUsageItWasGiven()
    {
        var (whole, text) = await PostAsync("https://api.openai.com/v1/chat/completions", new JsonObject { ["model"] = "gpt-4o" }, "Authorization", "Bearer sk-real");
        var stream = new JsonObject { ["model"] = "gpt-4o", ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true } };
        var (streamed, events) = await PostAsync("https://api.openai.com/v1/chat/completions", stream, "Authorization", "Bearer sk-real");

        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        var json = JsonNode.Parse(text)!;
        Assert.Equal(("gpt-4o-2024-08-06", "hello world"), (json["model"]!.GetValue<string>(), json["choices"]![0]!["message"]!["content"]!.GetValue<string>()));
        Assert.Equal((120, 30, 10), (json["usage"]!["prompt_tokens"]!.GetValue<long>(), json["usage"]!["completion_tokens"]!.GetValue<long>(), json["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<long>()));

        Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType!.MediaType);
        var data = Data(events);
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data[..^1].Select(d => JsonNode.Parse(d)!).ToList();
        Assert.Equal("hello world", string.Concat(chunks.Select(c => c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>())));
        Assert.True(chunks.Count(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["delta"]!["content"] is not null) >= 3, events);
        var usage = Assert.Single(chunks, c => c["usage"] is not null)["usage"]!;
        Assert.Equal((120, 30), (usage["prompt_tokens"]!.GetValue<long>(), usage["completion_tokens"]!.GetValue<long>()));

        var (_, withoutUsage) = await PostAsync("https://api.openai.com/v1/chat/completions", new JsonObject { ["model"] = "gpt-4o", ["stream"] = true }, "Authorization", "Bearer sk-real");
        Assert.DoesNotContain("\"usage\"", withoutUsage, StringComparison.Ordinal);

        Assert.All(_vendor.Requests, r => Assert.Equal(("/v1/chat/completions", "sk-real", "api.openai.com"), (r.Path, r.Key, r.Host.Split(':')[0])));
        Assert.Equal([1, 2, 3], _vendor.Requests.Select(r => r.Number));
    }

    [Fact]
    public async Task Responses_WholeAndStreamed_ReportTheUsageItWasGiven()
    {
        var (_, text) = await PostAsync("https://api.openai.com/v1/responses", new JsonObject { ["model"] = "gpt-4o", ["input"] = "hi" }, "Authorization", "Bearer sk-real");
        var (_, events) = await PostAsync("https://api.openai.com/v1/responses", new JsonObject { ["model"] = "gpt-4o", ["input"] = "hi", ["stream"] = true }, "Authorization", "Bearer sk-real");

        var usage = JsonNode.Parse(text)!["usage"]!;
        Assert.Equal((120, 30, 10), (usage["input_tokens"]!.GetValue<long>(), usage["output_tokens"]!.GetValue<long>(), usage["input_tokens_details"]!["cached_tokens"]!.GetValue<long>()));
        Assert.Contains("event: response.completed\n", events, StringComparison.Ordinal);
        var completed = JsonNode.Parse(Data(events)[^1])!["response"]!;
        Assert.Equal(("gpt-4o-2024-08-06", 120, 30), (completed["model"]!.GetValue<string>(), completed["usage"]!["input_tokens"]!.GetValue<long>(), completed["usage"]!["output_tokens"]!.GetValue<long>()));
    }

    [Fact]
    public async Task Messages_WholeAndStreamed_ReportTheUsageInAnthropicsShape()
    {
        var body = new JsonObject { ["model"] = "claude-sonnet-4", ["max_tokens"] = 64 };
        var (_, text) = await PostAsync("https://api.anthropic.com/v1/messages", body, "x-api-key", "ant-real");
        body["stream"] = true;
        var (_, events) = await PostAsync("https://api.anthropic.com/v1/messages", body, "x-api-key", "ant-real");

        var usage = JsonNode.Parse(text)!["usage"]!;
        // Anthropic's input_tokens leaves the cache reads out.
        Assert.Equal((110, 10, 30), (usage["input_tokens"]!.GetValue<long>(), usage["cache_read_input_tokens"]!.GetValue<long>(), usage["output_tokens"]!.GetValue<long>()));
        var data = Data(events).Select(d => JsonNode.Parse(d)!).ToList();
        Assert.Equal("message_start", data[0]["type"]!.GetValue<string>());
        Assert.Equal(110, data[0]["message"]!["usage"]!["input_tokens"]!.GetValue<long>());
        Assert.Equal(30, data.Single(d => d["type"]!.GetValue<string>() == "message_delta")["usage"]!["output_tokens"]!.GetValue<long>());
        Assert.Equal("hello world", string.Concat(data.Where(d => d["type"]!.GetValue<string>() == "content_block_delta").Select(d => d["delta"]!["text"]!.GetValue<string>())));
        Assert.All(_vendor.Requests, r => Assert.Equal(("ant-real", null), (r.Key, r.Authorization)));
    }

    [Fact]
    public async Task AnError_ComesInTheApisOwnFormat()
    {
        _vendor.Answer = _ => new ModelReply { Status = 529, ErrorMessage = "overloaded" };

        var (openAi, openAiText) = await PostAsync("https://api.openai.com/v1/chat/completions", new JsonObject { ["model"] = "gpt-4o", ["stream"] = true }, "Authorization", "Bearer k");
        var (anthropic, anthropicText) = await PostAsync("https://api.anthropic.com/v1/messages", new JsonObject { ["model"] = "claude" }, "x-api-key", "k");

        Assert.Equal((529, 529), ((int)openAi.StatusCode, (int)anthropic.StatusCode));
        Assert.Equal("overloaded", JsonNode.Parse(openAiText)!["error"]!["message"]!.GetValue<string>());
        Assert.Equal(("error", "overloaded"), (JsonNode.Parse(anthropicText)!["type"]!.GetValue<string>(), JsonNode.Parse(anthropicText)!["error"]!["message"]!.GetValue<string>()));
    }

    /// <summary>The <c>data:</c> payloads of a server-sent event stream, in order.</summary>
    private static List<string> Data(string events) =>
        [.. events.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..])];

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _vendor.DisposeAsync();
        _authority.Dispose();
    }
}
