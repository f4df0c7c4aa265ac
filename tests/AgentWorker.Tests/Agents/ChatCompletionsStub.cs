using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Tests.Agents;

/// <summary>
/// A loopback HTTP server speaking the OpenAI chat-completions API: it records each request (path, bearer token, body)
/// and answers with the next scripted reply, the last one repeating.
/// </summary>
internal sealed class ChatCompletionsStub : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(int Status, string Body)> _replies = new();
    private (int Status, string Body) _last;

    public sealed record Request(string Path, string? Authorization, JsonObject Body);

    private ChatCompletionsStub(WebApplication app) => _app = app;

    public ConcurrentQueue<Request> Requests { get; } = new();

    public string BaseUrl => $"{_app.Urls.Single()}/v1";

    /// <summary>A 200 answer whose message content is <paramref name="content"/>.</summary>
    public static string Completion(string content) => new JsonObject
    {
        ["id"] = "chatcmpl-test",
        ["object"] = "chat.completion",
        ["choices"] = new JsonArray { new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content }, ["finish_reason"] = "stop" } },
    }.ToJsonString();

    public static async Task<ChatCompletionsStub> StartAsync(params (int Status, string Body)[] replies)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var stub = new ChatCompletionsStub(app);
        foreach (var reply in replies)
            stub._replies.Enqueue(reply);
        stub._last = replies[^1];
        app.MapPost("/v1/chat/completions", async (HttpRequest request) =>
        {
            var body = (JsonNode.Parse(await new StreamReader(request.Body).ReadToEndAsync()) as JsonObject)!;
            stub.Requests.Enqueue(new Request(request.Path, request.Headers.Authorization.ToString(), body));
            var (status, text) = stub._replies.TryDequeue(out var next) ? next : stub._last;
            return Results.Content(text, "application/json", statusCode: status);
        });
        await app.StartAsync();
        return stub;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
