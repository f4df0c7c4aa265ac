using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Testing;

/// <summary>What a <see cref="FakeModelVendor"/> answers one request with; the usage is reported in the shape of the API asked.</summary>
public sealed record ModelReply
{
    /// <summary>The assistant's text (streamed in several pieces).</summary>
    public string Content { get; init; } = "done";

    /// <summary>The model the answer names; null: the one the request named.</summary>
    public string? Model { get; init; }

    /// <summary>Input tokens, the cached ones included (OpenAI's prompt_tokens; Anthropic gets input_tokens = this minus cached).</summary>
    public long InputTokens { get; init; } = 100;

    public long OutputTokens { get; init; } = 20;

    public long CachedTokens { get; init; }

    /// <summary>Not 200: an error body in the API's own format, with <see cref="ErrorMessage"/>.</summary>
    public int Status { get; init; } = 200;

    public string ErrorMessage { get; init; } = "the fake vendor was told to fail";
}

/// <summary>One request a <see cref="FakeModelVendor"/> got, numbered from 1 in arrival order.</summary>
public sealed record VendorRequest(int Number, string Host, string Path, string? Authorization, string? ApiKey, string Body)
{
    /// <summary>The key as sent, whichever header carried it (<c>Bearer</c> taken off).</summary>
    public string? Key => ApiKey ?? (Authorization?.StartsWith("Bearer ", StringComparison.Ordinal) == true ? Authorization[7..] : Authorization);

    public JsonObject Json => JsonNode.Parse(Body) as JsonObject ?? [];

    public string? Model => Json["model"]?.GetValue<string>();

    public bool Stream => Json["stream"]?.GetValue<bool>() == true;
}

/// <summary>
/// A model vendor for the gateway tests: HTTPS (a leaf of a <see cref="TestCertificateAuthority"/> for the vendor names the
/// test pins to it) on a loopback address of its own, speaking OpenAI chat completions (<c>…/chat/completions</c>), OpenAI
/// Responses (<c>…/responses</c>) and Anthropic messages (<c>…/messages</c>), streamed (server-sent events, each flushed on
/// its own) when the request says <c>"stream": true</c>, else one JSON answer. It records every request, so a test can show
/// which key arrived and how many requests got through, and answers each as <see cref="Answer"/> says, so a test knows
/// what usage it reported.
/// </summary>
public sealed class FakeModelVendor : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<VendorRequest> _requests = new();
    private int _count;

    private FakeModelVendor(WebApplication app, IPAddress address, IReadOnlyList<string> names)
    {
        _app = app;
        Address = address;
        Names = names;
    }

    public IPAddress Address { get; }

    public int Port { get; private set; }

    /// <summary>The names its certificate holds.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary><c>address:port</c>, as EGRESS_ALLOW_CIDRS takes it.</summary>
    public string EndPoint => $"{Address}:{Port}";

    /// <summary>EGRESS_RESOLVE pinning each of <see cref="Names"/> on <see cref="Port"/> to this server.</summary>
    public string Pins => string.Join(',', Names.Select(name => $"{name}:{Port}:{Address}"));

    /// <summary>How to answer a request; by default 200 with a <see cref="ModelReply"/>'s defaults.</summary>
    public Func<VendorRequest, ModelReply> Answer { get; set; } = _ => new ModelReply();

    /// <summary>Every request so far, in arrival order.</summary>
    public IReadOnlyList<VendorRequest> Requests => [.. _requests];

    /// <summary>Starts on <paramref name="port"/> (0: any) of the first loopback address from a random one on (127.0.0.2 and up) where it is free.</summary>
    public static async Task<FakeModelVendor> StartAsync(TestCertificateAuthority authority, IReadOnlyList<string> names, int port = 443)
    {
        var first = Random.Shared.Next(0, 253);
        IOException? last = null;
        for (var i = 0; i < 253; i++)
        {
            var address = new IPAddress([127, 0, 0, (byte)(2 + (first + i) % 253)]);
            var vendor = Create(authority, names, address, port);
            try
            {
                await vendor._app.StartAsync();
                vendor.Port = new Uri(vendor._app.Urls.Single()).Port;
                return vendor;
            }
            catch (IOException e)
            {
                last = e;
                await vendor.DisposeAsync();
            }
        }
        throw new InvalidOperationException($"no loopback address had port {port} free", last);
    }

    private static FakeModelVendor Create(TestCertificateAuthority authority, IReadOnlyList<string> names, IPAddress address, int port)
    {
        var certificate = authority.Issue(names, [address]);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(address, port, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.UseHttps(certificate);
        }));
        var app = builder.Build();
        var vendor = new FakeModelVendor(app, address, names);
        app.Run(vendor.ServeAsync);
        return vendor;
    }

    private async Task ServeAsync(HttpContext context)
    {
        var body = await new StreamReader(context.Request.Body, Encoding.UTF8).ReadToEndAsync(context.RequestAborted);
        var headers = context.Request.Headers;
        var request = new VendorRequest(Interlocked.Increment(ref _count), context.Request.Host.ToString(), context.Request.Path.ToString(),
            headers.Authorization.Count > 0 ? headers.Authorization.ToString() : null, headers["x-api-key"].Count > 0 ? headers["x-api-key"].ToString() : null, body);
        _requests.Enqueue(request);
        var path = request.Path;
        ModelApi? api = !HttpMethods.IsPost(context.Request.Method) ? null
            : path.EndsWith("/chat/completions", StringComparison.Ordinal) ? new ChatCompletions()
            : path.EndsWith("/responses", StringComparison.Ordinal) ? new Responses()
            : path.EndsWith("/messages", StringComparison.Ordinal) ? new Messages()
            : null;
        if (api is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var reply = Answer(request);
        var model = reply.Model ?? request.Model ?? "unknown";
        if (reply.Status != StatusCodes.Status200OK)
        {
            context.Response.StatusCode = reply.Status;
            await WriteJsonAsync(context, api.Error(reply));
            return;
        }
        if (!request.Stream)
        {
            await WriteJsonAsync(context, api.Whole(reply, model));
            return;
        }
        context.Response.ContentType = "text/event-stream";
        var includeUsage = request.Json["stream_options"]?["include_usage"]?.GetValue<bool>() == true;
        foreach (var (name, data) in api.Events(reply, model, Pieces(reply.Content), includeUsage))
        {
            var text = (name is null ? "" : $"event: {name}\n") + $"data: {(data is JsonNode node ? node.ToJsonString() : data)}\n\n";
            await context.Response.WriteAsync(text, context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    private static Task WriteJsonAsync(HttpContext context, JsonObject json)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(json.ToJsonString(), context.RequestAborted);
    }

    /// <summary>The content in three pieces (fewer when it is shorter), as a stream delivers it.</summary>
    private static List<string> Pieces(string content)
    {
        var size = Math.Max(1, (content.Length + 2) / 3);
        return [.. content.Chunk(size).Select(piece => new string(piece))];
    }

    /// <summary>One API's answers: whole, as events (name, data: a JSON node or a literal), and its error format.</summary>
    private abstract class ModelApi
    {
        public abstract JsonObject Whole(ModelReply reply, string model);

        public abstract IEnumerable<(string? Name, object Data)> Events(ModelReply reply, string model, List<string> pieces, bool includeUsage);

        public abstract JsonObject Error(ModelReply reply);
    }

    private sealed class ChatCompletions : ModelApi
    {
        public override JsonObject Whole(ModelReply reply, string model) => new()
        {
            ["id"] = "chatcmpl-fake",
            ["object"] = "chat.completion",
            ["created"] = 0,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = reply.Content },
                ["finish_reason"] = "stop",
            }),
            ["usage"] = Usage(reply),
        };

        public override IEnumerable<(string? Name, object Data)> Events(ModelReply reply, string model, List<string> pieces, bool includeUsage)
        {
            yield return (null, Chunk(model, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
            foreach (var piece in pieces)
                yield return (null, Chunk(model, new JsonObject { ["content"] = piece }, null));
            yield return (null, Chunk(model, [], "stop"));
            if (includeUsage)
                yield return (null, new JsonObject { ["id"] = "chatcmpl-fake", ["object"] = "chat.completion.chunk", ["model"] = model, ["choices"] = new JsonArray(), ["usage"] = Usage(reply) });
            yield return (null, "[DONE]");
        }

        private static JsonObject Chunk(string model, JsonObject delta, string? finish) => new()
        {
            ["id"] = "chatcmpl-fake",
            ["object"] = "chat.completion.chunk",
            ["created"] = 0,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
        };

        private static JsonObject Usage(ModelReply reply) => new()
        {
            ["prompt_tokens"] = reply.InputTokens,
            ["completion_tokens"] = reply.OutputTokens,
            ["total_tokens"] = reply.InputTokens + reply.OutputTokens,
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = reply.CachedTokens },
        };

        public override JsonObject Error(ModelReply reply) => OpenAiError(reply);
    }

    private sealed class Responses : ModelApi
    {
        public override JsonObject Whole(ModelReply reply, string model) => Response(reply, model, completed: true);

        public override IEnumerable<(string? Name, object Data)> Events(ModelReply reply, string model, List<string> pieces, bool includeUsage)
        {
            yield return ("response.created", new JsonObject { ["type"] = "response.created", ["response"] = Response(reply, model, completed: false) });
            foreach (var piece in pieces)
            {
                yield return ("response.output_text.delta", new JsonObject
                {
                    ["type"] = "response.output_text.delta",
                    ["item_id"] = "msg_fake",
                    ["output_index"] = 0,
                    ["content_index"] = 0,
                    ["delta"] = piece,
                });
            }
            yield return ("response.completed", new JsonObject { ["type"] = "response.completed", ["response"] = Response(reply, model, completed: true) });
        }

        /// <summary>The response object; only a completed one carries output and usage.</summary>
        private static JsonObject Response(ModelReply reply, string model, bool completed) => new()
        {
            ["id"] = "resp_fake",
            ["object"] = "response",
            ["status"] = completed ? "completed" : "in_progress",
            ["model"] = model,
            ["output"] = completed
                ? new JsonArray(new JsonObject
                {
                    ["type"] = "message",
                    ["id"] = "msg_fake",
                    ["status"] = "completed",
                    ["role"] = "assistant",
                    ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = reply.Content, ["annotations"] = new JsonArray() }),
                })
                : new JsonArray(),
            ["usage"] = completed
                ? new JsonObject
                {
                    ["input_tokens"] = reply.InputTokens,
                    ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = reply.CachedTokens },
                    ["output_tokens"] = reply.OutputTokens,
                    ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0 },
                    ["total_tokens"] = reply.InputTokens + reply.OutputTokens,
                }
                : null,
        };

        public override JsonObject Error(ModelReply reply) => OpenAiError(reply);
    }

    private sealed class Messages : ModelApi
    {
        public override JsonObject Whole(ModelReply reply, string model) => new()
        {
            ["id"] = "msg_fake",
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = reply.Content }),
            ["stop_reason"] = "end_turn",
            ["stop_sequence"] = null,
            ["usage"] = Usage(reply, reply.OutputTokens),
        };

        /// <summary>Anthropic's order: message_start (input usage, output so far), the text block, message_delta (output, cumulative), message_stop.</summary>
        public override IEnumerable<(string? Name, object Data)> Events(ModelReply reply, string model, List<string> pieces, bool includeUsage)
        {
            var start = Whole(reply, model);
            start["content"] = new JsonArray();
            start["stop_reason"] = null;
            start["usage"] = Usage(reply, 1);
            yield return ("message_start", new JsonObject { ["type"] = "message_start", ["message"] = start });
            yield return ("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
            yield return ("ping", new JsonObject { ["type"] = "ping" });
            foreach (var piece in pieces)
                yield return ("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = piece } });
            yield return ("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 0 });
            yield return ("message_delta", new JsonObject
            {
                ["type"] = "message_delta",
                ["delta"] = new JsonObject { ["stop_reason"] = "end_turn", ["stop_sequence"] = null },
                ["usage"] = new JsonObject { ["output_tokens"] = reply.OutputTokens },
            });
            yield return ("message_stop", new JsonObject { ["type"] = "message_stop" });
        }

        /// <summary>Anthropic counts cache reads apart from input_tokens.</summary>
        private static JsonObject Usage(ModelReply reply, long outputTokens) => new()
        {
            ["input_tokens"] = reply.InputTokens - reply.CachedTokens,
            ["cache_creation_input_tokens"] = 0,
            ["cache_read_input_tokens"] = reply.CachedTokens,
            ["output_tokens"] = outputTokens,
        };

        public override JsonObject Error(ModelReply reply) => new()
        {
            ["type"] = "error",
            ["error"] = new JsonObject { ["type"] = reply.Status >= 500 ? "api_error" : "invalid_request_error", ["message"] = reply.ErrorMessage },
        };
    }

    private static JsonObject OpenAiError(ModelReply reply) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = reply.ErrorMessage,
            ["type"] = reply.Status >= 500 ? "server_error" : "invalid_request_error",
            ["param"] = null,
            ["code"] = null,
        },
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
