using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Polly;
using Polly.Retry;

namespace AgentWorker.Gateway;

/// <summary>
/// The model gateway: Kestrel serving the connections each run accepts on its own listener (<see cref="RunConnections"/>),
/// so a request's run is known from its connection. A request is checked (the run's placeholder, its budget, its size), sent on to the
/// vendor with the real key over a connection the egress policy allowed, and its answer streamed back unchanged while
/// <see cref="UsageReader"/> reads the usage from it. The gateway's own refusals are in the vendor's error format.
/// </summary>
internal sealed partial class ModelGatewayServer(
    GatewayOptions options, EgressPolicy egress, Func<ModelVendor, string?> keys, IJobMetrics metrics, ILogger<ModelGatewayServer> logger) : IModelGateway, IAsyncDisposable
{
    // Not forwarded in either direction: they describe one hop, or are the gateway's business (the key, the encoding it reads).
    private static readonly HashSet<string> HopHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Proxy-Connection", "Proxy-Authorization",
        "Proxy-Authenticate", "Host", "Content-Length", "Accept-Encoding", "Authorization", "x-api-key",
    };

    private readonly SemaphoreSlim _starting = new(1, 1);
    private WebApplication? _app;
    private RunConnections? _connections;

    // Made with the first run that needs them: an idle worker does not map System.Net.Http (bench/README.md "Startup").
    private VendorClient? _vendors;

    public async ValueTask<GatewayRun> OpenAsync(GatewayRunRequest request, CancellationToken cancellationToken)
    {
        var connections = _connections ?? await StartAsync(cancellationToken).ConfigureAwait(false);
        return new GatewayRun(request, new UsageMeter(request.Budget, options.Prices), connections.ServeAsync);
    }

    /// <summary>Starts Kestrel with the first run that needs it: a worker whose agents call no model never does.</summary>
    private async Task<RunConnections> StartAsync(CancellationToken cancellationToken)
    {
        await _starting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connections is not null)
                return _connections;
            _vendors = new VendorClient(egress);
            var connections = new RunConnections(logger);
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = Environments.Production });
            builder.Logging.ClearProviders();
            builder.Services.AddSingleton<IConnectionListenerFactory>(connections);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.AddServerHeader = false;
                // The gateway enforces its own limit, to answer in the vendor's format.
                kestrel.Limits.MaxRequestBodySize = null;
                kestrel.Listen(connections.EndPoint);
            });
            var app = builder.Build();
            app.Run(HandleAsync);
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await app.DisposeAsync().ConfigureAwait(false);
                throw new Core.Sandbox.SandboxException($"cannot start the model gateway: {e.Message}");
            }
            _app = app;
            _connections = connections;
            return connections;
        }
        finally
        {
            _starting.Release();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var run = context.Features.Get<IConnectionItemsFeature>()?.Items[RunConnections.RunItem] as GatewayRun;
        var path = context.Request.Path.Value ?? "/";
        var slash = path.IndexOf('/', 1);
        var name = slash < 0 ? path[1..] : path[1..slash];
        var vendor = run?.Request.Vendors.FirstOrDefault(v => v.Name == name);
        var api = vendor?.Api ?? run?.Request.Vendors.FirstOrDefault()?.Api ?? ModelApi.OpenAI;
        if (run is null || !run.IsOpen)
        {
            await RefuseAsync(context, api, 401, "the run this connection belongs to has ended").ConfigureAwait(false);
            return;
        }
        if (vendor is null)
        {
            await RefuseAsync(context, api, 404, $"no vendor '{name}' behind this gateway; it has {string.Join(", ", run.Request.Vendors.Select(v => $"/{v.Name}/"))}").ConfigureAwait(false);
            return;
        }
        if (vendor.KeyVariable is not null && !run.Accepts(PresentedKey(context.Request, vendor)))
        {
            await RefuseAsync(context, api, 401, $"the key is not this run's: send the value of {vendor.KeyVariable} as the agent got it").ConfigureAwait(false);
            return;
        }
        if (run.Meter.Admit() is { } overBudget)
        {
            await RecordAsync(run, vendor, new ModelEvent(vendor.Name, null, 429, null, null, null, null, Elapsed(started), false, $"budget_exceeded: {overBudget}")).ConfigureAwait(false);
            await RefuseAsync(context, api, 429, $"budget_exceeded: {overBudget}").ConfigureAwait(false);
            return;
        }
        // Admitted: from here every way out records the request, which holds its place under maxRequests until then.
        byte[]? body;
        try
        {
            body = await ReadBodyAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or BadHttpRequestException)
        {
            run.Meter.Record("unknown", null, Stopwatch.GetElapsedTime(started));
            return;
        }
        if (body is null)
        {
            await FailAsync(context, run, vendor, "unknown", false, started, 413, $"the request is larger than the gateway's limit of {options.MaxRequestBytes >> 20} MiB (GATEWAY_MAX_REQUEST_MB)").ConfigureAwait(false);
            return;
        }
        var (requestModel, stream) = Describe(body);
        await ForwardAsync(context, run, vendor, body, requestModel ?? "unknown", stream, started).ConfigureAwait(false);
    }

    private async Task ForwardAsync(HttpContext context, GatewayRun run, ModelVendor vendor, byte[] body, string requestModel, bool stream, long started)
    {
        var target = vendor.UpstreamFor(context.Request.Path.Value![(vendor.Name.Length + 1)..], context.Request.QueryString.Value ?? "");
        var key = keys(vendor);
        using var headersTimeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        headersTimeout.CancelAfter(options.Timeout);
        HttpResponseMessage response;
        try
        {
            response = await _vendors!.SendAsync(() => Outgoing(context.Request, vendor, target, body, key), headersTimeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The agent gave up waiting; the vendor may have been asked, so the request counts.
            run.Meter.Record(requestModel, null, Stopwatch.GetElapsedTime(started));
            return;
        }
        catch (OperationCanceledException)
        {
            await FailAsync(context, run, vendor, requestModel, stream, started, 504, $"{target.Host} did not answer within {options.Timeout.TotalSeconds:0}s (GATEWAY_TIMEOUT_SECONDS)").ConfigureAwait(false);
            return;
        }
        catch (HttpRequestException e)
        {
            var reason = e.InnerException is EgressRefusedException refused ? refused.Message : $"cannot reach {target.Host}: {e.Message}";
            await FailAsync(context, run, vendor, requestModel, stream, started, 502, reason).ConfigureAwait(false);
            return;
        }
        using (response)
        {
            var usage = await RelayAsync(context, response, new SecretMask(key)).ConfigureAwait(false);
            var model = usage.Model ?? requestModel;
            var call = run.Meter.Record(model, usage.Usage, Stopwatch.GetElapsedTime(started));
            metrics.ModelCall(run.Request.AgentId, call);
            await RecordAsync(run, vendor, new ModelEvent(vendor.Name, model, (int)response.StatusCode, usage.Usage?.InputTokens, usage.Usage?.OutputTokens,
                usage.Usage?.CachedTokens, call.CostUsd, Elapsed(started), stream)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Streams the vendor's answer to the agent as it arrives, reading its usage on the way, within the size limit. The
    /// real key is masked wherever the answer quotes it (<paramref name="mask"/>): the agent must never see it.
    /// </summary>
    private async Task<(string? Model, TokenUsage? Usage)> RelayAsync(HttpContext context, HttpResponseMessage response, SecretMask mask)
    {
        var eventStream = response.Content.Headers.ContentType?.MediaType == "text/event-stream";
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (!HopHeaders.Contains(name))
                context.Response.Headers[name] = values.Select(mask.Mask).ToArray();
        }
        if (response.Content.Headers.ContentLength is { } length)
            context.Response.ContentLength = length;
        // A stream's headers go at once (the agent is waiting for its first event); any other answer's go with its body.
        if (eventStream)
            await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);
        var reader = new UsageReader(eventStream);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        long total = 0;
        try
        {
            await using var from = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            int read;
            while ((read = await from.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                total += read;
                if (total > options.MaxResponseBytes)
                {
                    LogResponseTooLarge(logger, response.RequestMessage?.RequestUri?.Host, options.MaxResponseBytes >> 20);
                    context.Abort();
                    break;
                }
                reader.Write(buffer.AsSpan(0, read));
                await context.Response.Body.WriteAsync(mask.Write(buffer.AsSpan(0, read)), context.RequestAborted).ConfigureAwait(false);
                if (eventStream)
                    await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
            await context.Response.Body.WriteAsync(mask.Flush(), context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or HttpRequestException)
        {
            // The agent or the vendor went away mid-answer: what was read still counts.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return reader.Complete();
    }

    private static HttpRequestMessage Outgoing(HttpRequest request, ModelVendor vendor, Uri target, byte[] body, string? key)
    {
        var message = new HttpRequestMessage(new HttpMethod(request.Method), target);
        if (body.Length > 0 || request.ContentLength is not null || request.Headers.TransferEncoding.Count > 0)
            message.Content = new ByteArrayContent(body);
        foreach (var (name, values) in request.Headers)
        {
            if (HopHeaders.Contains(name) || name.Equals(vendor.KeyHeader, StringComparison.OrdinalIgnoreCase))
                continue;
            if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
        }
        if (key is { Length: > 0 })
            message.Headers.TryAddWithoutValidation(vendor.KeyHeader, vendor.KeyValue(key));
        return message;
    }

    /// <summary>The key the agent sent: in the vendor's header and form, or as a bearer token or x-api-key (SDKs differ).</summary>
    private static string? PresentedKey(HttpRequest request, ModelVendor vendor)
    {
        var at = vendor.KeyFormat.IndexOf("{key}", StringComparison.Ordinal);
        var (prefix, suffix) = (vendor.KeyFormat[..at], vendor.KeyFormat[(at + 5)..]);
        if (request.Headers[vendor.KeyHeader].ToString() is { Length: > 0 } value && value.StartsWith(prefix, StringComparison.Ordinal) && value.EndsWith(suffix, StringComparison.Ordinal) && value.Length >= prefix.Length + suffix.Length)
            return value[prefix.Length..^suffix.Length];
        if (request.Headers.Authorization.ToString() is { } authorization && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return authorization[7..].Trim();
        return request.Headers["x-api-key"].ToString() is { Length: > 0 } apiKey ? apiKey : null;
    }

    /// <summary>The request's body, or null when it is over the limit.</summary>
    private async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > options.MaxRequestBytes)
            return null;
        using var body = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (body.Length + read > options.MaxRequestBytes)
                    return null;
                body.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return body.ToArray();
    }

    /// <summary>The request's model and whether it asks for a stream, from its JSON body when it has one.</summary>
    private static (string? Model, bool Stream) Describe(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (null, false);
            var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            return (model, root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True);
        }
        catch (JsonException)
        {
            return (null, false);
        }
    }

    private async Task FailAsync(HttpContext context, GatewayRun run, ModelVendor vendor, string model, bool stream, long started, int status, string reason)
    {
        LogUpstreamFailed(logger, run.Request.JobId, vendor.Name, status, reason);
        var call = run.Meter.Record(model, null, Stopwatch.GetElapsedTime(started));
        metrics.ModelCall(run.Request.AgentId, call);
        await RecordAsync(run, vendor, new ModelEvent(vendor.Name, model, status, null, null, null, null, Elapsed(started), stream, reason)).ConfigureAwait(false);
        await RefuseAsync(context, vendor.Api, status, reason).ConfigureAwait(false);
    }

    private static ValueTask RecordAsync(GatewayRun run, ModelVendor vendor, ModelEvent record) =>
        run.Request.Events(new NewJobEvent(JobEventKind.Model, JsonSerializer.Serialize(record, ResultJson.Options)));

    /// <summary>Answers with the gateway's own error, shaped like the vendor's so that the agent's SDK reports it as usual.</summary>
    private static Task RefuseAsync(HttpContext context, ModelApi api, int status, string reason)
    {
        var message = $"agent-worker gateway: {reason}";
        context.Response.StatusCode = status;
        // Stainless-generated SDKs (OpenAI's, Anthropic's) do not retry when told so: a refusal would only be refused again.
        if (status is 401 or 404 or 413 or 429)
            context.Response.Headers["x-should-retry"] = "false";
        object error = api == ModelApi.Anthropic
            ? new { type = "error", error = new { type = AnthropicType(status), message } }
            : new { error = new { message, type = OpenAIType(status), code = OpenAICode(status) } };
        return context.Response.WriteAsJsonAsync(error, context.RequestAborted);
    }

    private static string AnthropicType(int status) => status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        _ => "api_error",
    };

    private static string OpenAIType(int status) => status switch
    {
        401 or 404 or 413 => "invalid_request_error",
        429 => "insufficient_quota",
        _ => "server_error",
    };

    private static string OpenAICode(int status) => status switch
    {
        401 => "invalid_api_key",
        404 => "not_found",
        413 => "request_too_large",
        429 => "budget_exceeded",
        504 => "upstream_timeout",
        _ => "upstream_unreachable",
    };

    private static double Elapsed(long started) => Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3);

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
            await _app.DisposeAsync().ConfigureAwait(false);
        _vendors?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: model gateway answered {Status} for vendor {Vendor}: {Reason}")]
    private static partial void LogUpstreamFailed(ILogger logger, string jobId, string vendor, int status, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model gateway: an answer from {Host} was over GATEWAY_MAX_RESPONSE_MB ({LimitMb} MiB) and was cut off")]
    private static partial void LogResponseTooLarge(ILogger logger, string? host, long limitMb);
}

/// <summary>The gateway's side towards the vendors: pooled connections, each to an address the egress policy allowed.</summary>
internal sealed class VendorClient(EgressPolicy egress) : IDisposable
{
    private readonly HttpClient _client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        ConnectCallback = (context, cancellationToken) => ConnectAsync(egress, context.DnsEndPoint, cancellationToken),
    })
    { Timeout = Timeout.InfiniteTimeSpan };

    // A request that never left (no connection could be made) is always safe to send again; anything the vendor
    // answered, even 429 or 5xx, goes back to the agent, whose SDK retries as its vendor says.
    private readonly ResiliencePipeline<HttpResponseMessage> _retry = new ResiliencePipelineBuilder<HttpResponseMessage>()
        .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
        {
            ShouldHandle = new PredicateBuilder<HttpResponseMessage>().Handle<HttpRequestException>(e => e.HttpRequestError == HttpRequestError.ConnectionError && e.InnerException is not EgressRefusedException),
            MaxRetryAttempts = 2,
            Delay = TimeSpan.FromMilliseconds(200),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
        })
        .Build();

    /// <summary>Sends a request made by <paramref name="request"/> (again, for a retry), returning once the headers are in.</summary>
    public async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> request, CancellationToken cancellationToken) =>
        await _retry.ExecuteAsync(async token => await _client.SendAsync(request(), HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    /// <summary>Connects to the vendor only where the egress policy allows, to the address it checked (EGRESS_RESOLVE, EGRESS_ALLOW_CIDRS apply).</summary>
    private static async ValueTask<Stream> ConnectAsync(EgressPolicy egress, DnsEndPoint endPoint, CancellationToken cancellationToken)
    {
        var decision = await egress.DecideAsync(endPoint.Host, endPoint.Port, allowHosts: null, cancellationToken).ConfigureAwait(false);
        if (!decision.Allowed)
            throw new EgressRefusedException($"egress policy refused {decision.Host}:{decision.Port}: {decision.Reason}");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(decision.Address!, endPoint.Port, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>The egress policy refused the vendor's address; the message says why.</summary>
internal sealed class EgressRefusedException(string message) : Exception(message);
