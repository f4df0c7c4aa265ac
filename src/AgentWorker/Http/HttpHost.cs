using System.Globalization;
using System.Text.Json.Serialization;
using System.Threading.RateLimiting;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Queue;
using Microsoft.AspNetCore.RateLimiting;
using Prometheus;

namespace AgentWorker.Http;

/// <summary>The `serve` process: HTTP API, health, metrics and the worker pool in one host.</summary>
internal static partial class HttpHost
{
    /// <summary>How long /health, /ready and a metrics scrape wait for the backend before calling it down.</summary>
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    public static WebApplication Build(WorkerConfig config, IJobQueue queue, AgentRegistry agents, bool runWorkers = true)
    {
        // Empty rather than slim: the worker reads its own settings (WorkerConfig), so the host needs no appsettings.json,
        // environment or command-line sources and no file watchers for them; only Kestrel and routing are added back.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Logging.AddWorkerLogging(config);
        var registry = Metrics.NewCustomRegistry();
        builder.Services.AddSingleton<IJobMetrics>(new PrometheusJobMetrics(registry));
        builder.Services.AddAgentWorker(config, queue, agents, runWorkers);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(config.ListenAddress, config.Port);
            kestrel.Limits.MaxRequestBodySize = config.MaxBodyBytes;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<BackendUnavailableHandler>();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
            // No route binds a JSON body (intake parses its three shapes itself), so this only keeps numbers numbers in the OpenAPI schemas.
            o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
        });
        builder.Services.AddRateLimiter(o => ConfigureRateLimits(o, config.RateLimitPerMinute));
        builder.Services.AddQueueHistory();

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRateLimiter();
        app.MapJobs(config);
        app.MapAgents(config.ApiKey);
        app.MapQueueHistory(config.ApiKey);
        app.MapApiDocs(builder.Services, config.PublicUrl);
        app.MapDashboard();
        app.MapJobOutputs(config);
        app.MapHealth(queue, config);
        ExportQueueGauges(registry, queue, app.Services.GetRequiredService<BackendHealth>());
        app.MapMetrics("/metrics", registry);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("AgentWorker.Http");
            LogListening(logger, string.Join(", ", app.Urls), config.ApiKey is null ? "no API key configured: listening on loopback only, API open to local clients" : "bearer auth on");
        });
        // Start-up garbage (configuration, route table, DI graph) handed back to the system once, before the worker
        // idles: a compacting full collection that also releases the freed GC memory (idle `serve` RSS, bench/README.md).
        app.Lifetime.ApplicationStarted.Register(() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true));
        return app;
    }

    private static void ConfigureRateLimits(RateLimiterOptions options, int perMinute)
    {
        options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        options.OnRejected = async (context, cancellationToken) =>
        {
            var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromMinutes(1);
            context.HttpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            await Problems.Create(StatusCodes.Status429TooManyRequests, "Too many requests",
                $"at most {perMinute} intake requests per minute per client (RATE_LIMIT_PER_MINUTE)").ExecuteAsync(context.HttpContext);
        };
        options.AddPolicy(JobsApi.IntakePolicy, http => perMinute == 0
            ? RateLimitPartition.GetNoLimiter("off")
            : RateLimitPartition.GetFixedWindowLimiter(http.Connection.RemoteIpAddress?.ToString() ?? "unknown", _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = perMinute,
                Window = TimeSpan.FromMinutes(1),
                QueueLimit = 0,
            }));
    }

    private static void MapHealth(this IEndpointRouteBuilder app, IJobQueue queue, WorkerConfig config)
    {
        var started = TimeProvider.System.GetTimestamp();
        app.MapGet("/health", async (BackendHealth health, CancellationToken cancellationToken) =>
        {
            var uptime = Math.Round(TimeProvider.System.GetElapsedTime(started).TotalSeconds, 1);
            var stats = await ProbeAsync(health, queue.GetStatsAsync, cancellationToken);
            var backend = health.Current;
            if (stats is null)
            {
                return Results.Json(new
                {
                    status = "unhealthy",
                    uptimeSeconds = uptime,
                    workers = config.Pipeline.Slots,
                    backend = new { name = backend.Name, status = "down", up = false, error = backend.Error, downSince = backend.DownSince, outages = backend.Outages },
                }, statusCode: StatusCodes.Status503ServiceUnavailable);
            }
            return Results.Ok(new
            {
                status = "ok",
                uptimeSeconds = uptime,
                queueDepth = stats.Depth,
                running = stats.Running,
                succeeded = stats.Succeeded,
                failed = stats.Failed,
                dead = stats.Dead,
                cancelled = stats.Cancelled,
                timedOut = stats.TimedOut,
                workers = config.Pipeline.Slots,
                backend = new { name = backend.Name, status = "up", up = true, outages = backend.Outages },
            });
        });
        app.MapGet("/ready", async (IHostApplicationLifetime lifetime, BackendHealth health, CancellationToken cancellationToken) =>
        {
            if (lifetime.ApplicationStopping.IsCancellationRequested)
                return Problems.Create(StatusCodes.Status503ServiceUnavailable, "Not ready", "shutting down");
            if (await ProbeAsync(health, async token => { await queue.PingAsync(token); return true; }, cancellationToken))
                return Results.Ok(new { ready = true });
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "Not ready", $"backend {queue.Backend} unreachable: {health.Current.Error}");
        });
    }

    /// <summary>
    /// One call to the backend for a health check, bounded by <see cref="ProbeTimeout"/>; the answer (or the failure)
    /// goes into <paramref name="health"/>. Returns default when the backend did not answer.
    /// </summary>
    private static async Task<T?> ProbeAsync<T>(BackendHealth health, Func<CancellationToken, Task<T>> probe, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
        try
        {
            var answer = await probe(timeout.Token);
            health.ReportUp();
            return answer;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            health.ReportDown(new TimeoutException($"no answer within {ProbeTimeout.TotalSeconds:0}s"));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Whatever the reason (unreachable, a lost grant, a dropped schema), the queue cannot be used.
            health.ReportDown(e);
        }
        return default;
    }

    /// <summary>Queue-wide counts come from the store at scrape time, so every worker sharing the queue reports the same.</summary>
    private static void ExportQueueGauges(CollectorRegistry registry, IJobQueue queue, BackendHealth health)
    {
        // Made at the first scrape, not at start-up (see PrometheusJobMetrics).
        var gauges = new Lazy<(Gauge Up, Gauge Depth, Gauge Jobs)>(() =>
        {
            var factory = Metrics.WithCustomRegistry(registry);
            return (factory.CreateGauge("agent_worker_backend_up", "1 while the queue backend answers, 0 during an outage (the queue gauges then keep their last values)."),
                factory.CreateGauge("agent_worker_queue_depth", "Jobs waiting to run (queued + retrying)."),
                factory.CreateGauge("agent_worker_jobs", "Jobs in the store by state.", ["state"]));
        });
        registry.AddBeforeCollectCallback(async cancellationToken =>
        {
            var (up, depth, jobs) = gauges.Value;
            var stats = await ProbeAsync(health, queue.GetStatsAsync, cancellationToken);
            up.Set(stats is null ? 0 : 1);
            if (stats is null)
                return;
            depth.Set(stats.Depth);
            jobs.WithLabels("queued").Set(stats.Queued);
            jobs.WithLabels("running").Set(stats.Running);
            jobs.WithLabels("retrying").Set(stats.Retrying);
            jobs.WithLabels("succeeded").Set(stats.Succeeded);
            jobs.WithLabels("failed").Set(stats.Failed);
            jobs.WithLabels("cancelled").Set(stats.Cancelled);
            jobs.WithLabels("timed_out").Set(stats.TimedOut);
            jobs.WithLabels("dead").Set(stats.Dead);
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening on {Urls} ({Auth})")]
    private static partial void LogListening(ILogger logger, string urls, string auth);
}
