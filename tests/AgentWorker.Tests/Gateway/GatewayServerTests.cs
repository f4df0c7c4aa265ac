using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// The worker's model gateway in process, in front of a loopback vendor the test runs (plain HTTP, its one address
/// allowed by the egress policy): what it forwards, what it refuses and how each refusal reads, its limits and its
/// streaming. The sandboxed path, TLS and real agents are in the gateway's end-to-end tests.
/// </summary>
public sealed class GatewayServerTests : IAsyncLifetime
{
    private const string RealKey = "sk-real-key-0123456789";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly List<(string Path, string? Authorization, string? ApiKey, string Body)> _seen = [];
    private readonly TaskCompletionSource _releaseStream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<NewJobEvent> _events = [];
    private WebApplication _vendor = null!;
    private int _port;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _vendor = builder.Build();
        _vendor.Run(ServeVendorAsync);
        await _vendor.StartAsync();
        _port = new Uri(_vendor.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
    }

    /// <summary>
    /// OpenAI's chat completions (JSON, or a stream whose second event waits for the test), Anthropic's messages, an
    /// answer that never comes (<c>/slow</c>), a large one (<c>/big</c>) and an error (<c>/broken</c>).
    /// </summary>
    private async Task ServeVendorAsync(HttpContext context)
    {
        var body = await new StreamReader(context.Request.Body).ReadToEndAsync();
        lock (_seen)
            _seen.Add((context.Request.Path.Value!, context.Request.Headers.Authorization.ToString(), context.Request.Headers["x-api-key"].ToString(), body));
        var path = context.Request.Path.Value!;
        if (path.EndsWith("/slow", StringComparison.Ordinal))
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
            return;
        }
        if (path.EndsWith("/big", StringComparison.Ordinal))
        {
            context.Response.ContentType = "application/octet-stream";
            var chunk = new byte[64 * 1024];
            for (var i = 0; i < 64 && !context.RequestAborted.IsCancellationRequested; i++)
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted).AsTask().ContinueWith(_ => { }, TaskScheduler.Default);
            return;
        }
        if (path.EndsWith("/broken", StringComparison.Ordinal))
        {
            context.Response.StatusCode = 503;
            await context.Response.WriteAsJsonAsync(new { error = new { message = "overloaded", type = "server_error" } });
            return;
        }
        if (path == "/v1/messages")
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"msg_1","model":"claude-test-1","usage":{"input_tokens":40,"output_tokens":9,"cache_read_input_tokens":20}}""");
            return;
        }
        if (JsonNode.Parse(body)?["stream"]?.GetValue<bool>() == true)
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: {\"model\":\"gpt-test\",\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n");
            await context.Response.Body.FlushAsync();
            await _releaseStream.Task.WaitAsync(Deadline);
            await context.Response.WriteAsync("data: {\"model\":\"gpt-test\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n");
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("""{"model":"gpt-test-2026","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":60}}}""");
    }

    private ModelGatewayServer Gateway(GatewayOptions? options = null, IReadOnlyList<CidrRule>? allow = null) => new(
        options ?? new GatewayOptions { Prices = PriceTable.Parse("""{"gpt-test": {"input": 2, "output": 8, "cachedInput": 1}}""") },
        new EgressPolicy(allow ?? [new CidrRule(IPAddress.Loopback, 32, _port)], []), _ => RealKey, new NoJobMetrics(), NullLogger<ModelGatewayServer>.Instance);

    private ModelVendor OpenAI(string? upstream = null) => ModelVendor.Presets["openai"] with { Upstream = new Uri(upstream ?? $"http://127.0.0.1:{_port}/v1") };

    private ModelVendor Anthropic => ModelVendor.Presets["anthropic"] with { Upstream = new Uri($"http://127.0.0.1:{_port}") };

    private async Task<(GatewayRun Run, HttpClient Client, Uri Base)> OpenAsync(ModelGatewayServer gateway, ModelBudget? budget = null, params ModelVendor[] vendors)
    {
        var run = await gateway.OpenAsync(new GatewayRunRequest("job-1", "coder", vendors.Length > 0 ? vendors : [OpenAI()], budget ?? ModelBudget.None, e =>
        {
            lock (_events)
                _events.Add(e);
            return ValueTask.CompletedTask;
        }), CancellationToken.None);
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Deadline };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", run.Placeholder);
        return (run, client, run.ListenOnHost());
    }

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, Uri url, string body, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead) =>
        client.SendAsync(new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") }, completion);

    private List<ModelEvent> ModelEvents()
    {
        lock (_events)
            return [.. _events.Where(e => e.Kind == JobEventKind.Model).Select(e => JsonSerializer.Deserialize<ModelEvent>(e.Message, ResultJson.Options)!)];
    }

    [Fact]
    public async Task Request_GoesToTheVendorWithTheRealKey_AndItsAnswerAndUsageComeBack()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions?trace=1"), """{"model":"gpt-test","messages":[]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"content\":\"ok\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var seen = Assert.Single(_seen);
        Assert.Equal(("/v1/chat/completions", $"Bearer {RealKey}"), (seen.Path, seen.Authorization));
        var usage = run.Meter.Report();
        Assert.Equal((1, 100L, 20L, 60L), (usage.Requests, usage.InputTokens, usage.OutputTokens, usage.CachedTokens));
        // (100 - 60) × 2 + 60 × 1 + 20 × 8 = 300 dollars per million tokens.
        Assert.Equal(0.0003m, usage.CostUsd);
        var logged = Assert.Single(ModelEvents());
        Assert.Equal(("openai", "gpt-test-2026", 200, 100L, 0.0003m), (logged.Vendor, logged.Model, logged.Status, logged.InputTokens, logged.CostUsd));
    }

    [Fact]
    public async Task Anthropic_GetsItsKeyInItsHeader_AndItsUsageShape()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway, null, Anthropic);
        using var _ = run;
        client.DefaultRequestHeaders.Authorization = null;
        client.DefaultRequestHeaders.Add("x-api-key", run.Placeholder);

        using var response = await PostAsync(client, new Uri(baseUrl, "anthropic/v1/messages"), """{"model":"claude-test","max_tokens":10}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(_seen);
        Assert.Equal((RealKey, ""), (seen.ApiKey, seen.Authorization));
        var usage = run.Meter.Report();
        Assert.Equal((60L, 9L, 20L), (usage.InputTokens, usage.OutputTokens, usage.CachedTokens));
        Assert.Equal(["claude-test-1"], usage.UnpricedModels);
        Assert.Null(usage.CostUsd);
    }

    [Fact]
    public async Task Stream_IsPassedOnAsItArrives_NotWhenItEnds()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions"), """{"model":"gpt-test","stream":true}""", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        // The vendor holds its second event until the first has reached the agent.
        var first = await reader.ReadLineAsync().WaitAsync(Deadline);
        _releaseStream.SetResult();
        var rest = await reader.ReadToEndAsync().WaitAsync(Deadline);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("first", first, StringComparison.Ordinal);
        Assert.Contains("[DONE]", rest, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => run.Meter.Report().OutputTokens == 5, Deadline, "the stream's usage recorded");
        Assert.True(ModelEvents().Single().Stream);
    }

    [Theory]
    [InlineData("Bearer awgw-0000", "not this run's")]
    [InlineData(null, "not this run's")]
    public async Task WrongOrNoPlaceholder_Is401_InTheVendorsFormat_AndNothingReachesIt(string? authorization, string message)
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;
        client.DefaultRequestHeaders.Authorization = authorization is null ? null : AuthenticationHeaderValue.Parse(authorization);

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions"), "{}");

        var error = await ErrorAsync(response, HttpStatusCode.Unauthorized);
        Assert.Equal("invalid_api_key", error["error"]!["code"]!.GetValue<string>());
        Assert.Contains(message, error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(_seen);
    }

    [Fact]
    public async Task AnotherRunsPlaceholder_AndAnEndedRunsConnection_AreRefused()
    {
        await using var gateway = Gateway();
        var (a, clientA, baseA) = await OpenAsync(gateway);
        var (b, clientB, baseB) = await OpenAsync(gateway);
        using var __ = b;
        clientB.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", a.Placeholder);

        using (var crossed = await PostAsync(clientB, new Uri(baseB, "openai/chat/completions"), "{}"))
            await ErrorAsync(crossed, HttpStatusCode.Unauthorized);
        using (var own = await PostAsync(clientA, new Uri(baseA, "openai/chat/completions"), """{"model":"gpt-test"}"""))
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        a.Dispose();

        // A's port is closed, and its placeholder opens no other run's door either.
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => PostAsync(clientA, new Uri(baseA, "openai/chat/completions"), "{}"));
        using (var late = await PostAsync(clientB, new Uri(baseB, "openai/chat/completions"), "{}"))
            await ErrorAsync(late, HttpStatusCode.Unauthorized);
        Assert.Single(_seen);
    }

    [Fact]
    public async Task UnknownVendor_Is404_NamingTheOnesTheRunHas()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "mistral/chat/completions"), "{}");

        var error = await ErrorAsync(response, HttpStatusCode.NotFound);
        Assert.Contains("no vendor 'mistral' behind this gateway; it has /openai/", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Budget_TheFirstRequestPastIt_Is429InTheVendorsFormat_AndNeverReachesIt()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway, new ModelBudget(null, 50, null), Anthropic);
        using var _ = run;
        client.DefaultRequestHeaders.Add("x-api-key", run.Placeholder);
        var url = new Uri(baseUrl, "anthropic/v1/messages");

        using (var first = await PostAsync(client, url, """{"model":"claude-test"}"""))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var second = await PostAsync(client, url, """{"model":"claude-test"}""");

        var error = await ErrorAsync(second, HttpStatusCode.TooManyRequests);
        Assert.Equal("error", error["type"]!.GetValue<string>());
        Assert.Equal("rate_limit_error", error["error"]!["type"]!.GetValue<string>());
        Assert.Contains("budget_exceeded: maxTokens 50 reached", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("false", second.Headers.GetValues("x-should-retry").Single());
        Assert.Single(_seen);
        Assert.Equal("maxTokens", run.Meter.Report().BudgetExceeded);
        Assert.StartsWith("budget_exceeded", ModelEvents().Last().Refused, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestOverTheLimit_Is413_BeforeTheVendor()
    {
        await using var gateway = Gateway(new GatewayOptions { MaxRequestBytes = 1024 });
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions"), $"{{\"model\":\"{new string('x', 2048)}\"}}");

        var error = await ErrorAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("GATEWAY_MAX_REQUEST_MB", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(_seen);
    }

    [Fact]
    public async Task AnswerOverTheLimit_IsCutOff()
    {
        await using var gateway = Gateway(new GatewayOptions { MaxResponseBytes = 1 << 20 });
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        // The vendor sends 4 MiB; the agent sees the connection end after about one.
        var read = 0L;
        var failed = await Record.ExceptionAsync(async () =>
        {
            using var response = await PostAsync(client, new Uri(baseUrl, "openai/big"), "{}", HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await body.ReadAsync(buffer)) > 0)
                read += n;
        });

        Assert.NotNull(failed);
        Assert.InRange(read, 0, 1 << 20);
    }

    [Fact]
    public async Task UpstreamTheEgressPolicyRefuses_Is502_WithoutAConnection()
    {
        // 10.0.0.1 is private and not allowed: refused by policy before any connection is tried.
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway, null, OpenAI("http://10.0.0.1:8000/v1"));
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions"), """{"model":"gpt-test"}""");

        var error = await ErrorAsync(response, HttpStatusCode.BadGateway);
        Assert.Contains("egress policy refused 10.0.0.1:8000: 10.0.0.1 is a private address", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(502, ModelEvents().Single().Status);
    }

    [Fact]
    public async Task UnreachableUpstream_IsTriedAgain_Then502()
    {
        using var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var deadPort = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        await using var gateway = Gateway(allow: [new CidrRule(IPAddress.Loopback, 32, deadPort)]);
        var (run, client, baseUrl) = await OpenAsync(gateway, null, OpenAI($"http://127.0.0.1:{deadPort}/v1"));
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/chat/completions"), """{"model":"gpt-test"}""");

        var error = await ErrorAsync(response, HttpStatusCode.BadGateway);
        Assert.Contains("cannot reach 127.0.0.1", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task VendorError_IsPassedBackAsItCame_NotRetried()
    {
        await using var gateway = Gateway();
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/broken"), """{"model":"gpt-test"}""");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("overloaded", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Single(_seen);
    }

    [Fact]
    public async Task SlowVendor_Is504_AfterTheTimeout()
    {
        await using var gateway = Gateway(new GatewayOptions { Timeout = TimeSpan.FromSeconds(1) });
        var (run, client, baseUrl) = await OpenAsync(gateway);
        using var _ = run;

        using var response = await PostAsync(client, new Uri(baseUrl, "openai/slow"), """{"model":"gpt-test"}""");

        var error = await ErrorAsync(response, HttpStatusCode.GatewayTimeout);
        Assert.Equal("upstream_timeout", error["error"]!["code"]!.GetValue<string>());
        Assert.Contains("GATEWAY_TIMEOUT_SECONDS", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static async Task<JsonNode> ErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        var error = JsonNode.Parse(text)!;
        var message = (error["error"]?["message"] ?? error["message"])!.GetValue<string>();
        Assert.StartsWith("agent-worker gateway: ", message, StringComparison.Ordinal);
        Assert.DoesNotContain(RealKey, text, StringComparison.Ordinal);
        return error;
    }

    public async Task DisposeAsync()
    {
        _releaseStream.TrySetResult();
        await _vendor.DisposeAsync();
    }
}
