using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace AgentWorker.Http;

/// <summary>The native job shape (DESIGN.md "Job model"); unknown fields are kept in <c>metadata</c>.</summary>
internal sealed record NativeJobRequest(
    RepoRef Repo, string? Id = null, string? Agent = null, string? Prompt = null, JobMode? Mode = null, NetworkMode? Network = null,
    IReadOnlyList<string>? AllowHosts = null, Core.Gateway.ModelBudget? Budget = null, string? McpUrl = null, int? TimeoutSeconds = null, int? MaxAttempts = null, int? Priority = null, DateTimeOffset? RunAt = null,
    JsonObject? Metadata = null);

/// <summary>The Bun/Redis seed's <c>/queue</c> shape; <c>requestedAt</c> and other extra fields go to <c>metadata</c>.</summary>
internal sealed record SeedQueueJobRequest(
    string RepoUrl, string? Id = null, string? AgentId = null, string? Mode = null, string? Branch = null, string? Prompt = null,
    DateTimeOffset? RequestedAt = null);

/// <summary>The reliable Redis worker's shape; it names no agent, so DEFAULT_AGENT runs it.</summary>
internal sealed record SeedReliableJobRequest(
    [property: JsonPropertyName("repo_url")] string RepoUrl,
    string? Id = null,
    string? Branch = null,
    string? Prompt = null,
    [property: JsonPropertyName("mcp_connection_url")] string? McpConnectionUrl = null);

/// <summary>The OpenAPI document at <c>/openapi/v1.json</c>: every route, the bearer scheme, and examples of the three job shapes.</summary>
internal static class ApiDocs
{
    public const string DocumentPath = "/openapi/v1.json";

    /// <summary>Endpoint metadata marking the intake routes, which read their body themselves (three shapes, one parser).</summary>
    public static readonly object JobIntake = new JobIntakeMarker();

    private const string Bearer = "bearer";
    private const string Operations = "operations";

    private const string FollowExample = """
        id: 1
        event: state
        data: {"seq":1,"jobId":"audit-2026-01-01","attempt":0,"at":"2026-01-01T09:00:00+00:00","kind":"state","message":"queued"}

        id: 5
        event: log
        data: {"seq":5,"jobId":"audit-2026-01-01","attempt":1,"at":"2026-01-01T09:00:02+00:00","kind":"log","message":"scanning 12 files","stream":"stdout"}

        event: end
        data: {"state":"succeeded"}

        """;

    /// <summary>Request examples, one per accepted shape; a test posts each of them and expects 202.</summary>
    public static readonly IReadOnlyList<(string Name, string Summary, string Json)> JobShapeExamples =
    [
        ("native", "Native shape", """
            {"id":"audit-2026-01-01","agent":"ssot_auditor","repo":{"url":"https://git.example/team/app.git","branch":"main"},
             "prompt":"Look for duplicated settings","mode":"dry_run","network":"none","timeoutSeconds":600,"maxAttempts":3,
             "priority":0,"metadata":{"ticket":"OPS-42"}}
            """),
        ("seed_queue", "Seed /queue shape (Bun/Redis worker)", """
            {"id":"test-001","agentId":"ssot_auditor","repoUrl":"https://git.example/team/app.git","mode":"dry_run","requestedAt":"2026-01-01T00:00:00Z"}
            """),
        ("seed_reliable_queue", "Seed reliable-queue shape (runs DEFAULT_AGENT)", """
            {"id":"job-123","repo_url":"git@git.example:team/app.git","branch":"feature","prompt":"Implement X","mcp_connection_url":"http://mcp.example/sse"}
            """),
    ];

    private static readonly Dictionary<string, string> OperationalRoutes = new(StringComparer.Ordinal)
    {
        ["/health"] = "Process and queue health: uptime, counts by state, worker slots, backend status (no token needed)",
        ["/ready"] = "200 when the backend answers and the process is not stopping, else 503 (no token needed)",
    };

    private static readonly Dictionary<(string Route, string Parameter), string> ParameterDocs = new()
    {
        [("/v1/jobs", "state")] = "Only jobs in this state: queued, running, retrying, succeeded, failed, cancelled, timed_out or dead.",
        [("/v1/jobs", "agent")] = "Only jobs of this agent id.",
        [("/v1/jobs", "repo")] = "Only jobs whose repository URL contains this text (case-sensitive).",
        [("/v1/jobs", "limit")] = "Page size, 1 to 500 (default 50).",
        [("/v1/jobs", "offset")] = "Jobs to skip (default 0).",
        [("/v1/jobs/{id}/logs", "follow")] = "true: answer with server-sent events until the job ends.",
        [("/v1/jobs/{id}/logs", "after")] = "Only events with a larger seq (a cursor from `next` or an event id).",
        [("/v1/jobs/{id}/logs", "Last-Event-ID")] = "Resume a followed stream after this event id (sent by EventSource on reconnect).",
    };

    private const string DocumentName = "v1";

    /// <summary>
    /// Serves <see cref="DocumentPath"/>. The OpenAPI generator (Microsoft.OpenApi, the API explorer and the MVC core it
    /// brings) is set up on the first request, in a service provider of its own, not in the app's: a worker whose
    /// document nobody asks for never loads it (3 MB of idle `serve` RSS, bench/README.md "Startup").
    /// </summary>
    /// <param name="app">The built app, whose endpoints the document describes.</param>
    /// <param name="appServices">The app's registrations, so the generator tells injected services from request parameters as the app does.</param>
    /// <param name="publicUrl">The document's one server (<c>PUBLIC_URL</c>); none when null.</param>
    public static void MapApiDocs(this WebApplication app, IServiceCollection appServices, Uri? publicUrl)
    {
        var documents = new Lazy<ServiceProvider>(() => DocumentServices(app, appServices));
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            if (documents.IsValueCreated)
                documents.Value.Dispose();
        });
        // Not an async lambda: its state machine would hold the document, and loading that type (on the first request
        // to any route, when the endpoints are built) would load Microsoft.OpenApi. DocumentAsync's is loaded when called.
        app.MapGet("/openapi/{documentName}.json", (HttpContext http, string documentName) =>
            documentName.Equals(DocumentName, StringComparison.OrdinalIgnoreCase)
                ? DocumentAsync(http, documents.Value, publicUrl)
                : Task.FromResult(Problems.Create(StatusCodes.Status404NotFound, "Not found", $"no OpenAPI document '{documentName}' (there is '{DocumentName}')")))
            .ExcludeFromDescription();
    }

    private static async Task<IResult> DocumentAsync(HttpContext http, ServiceProvider services, Uri? publicUrl)
    {
        var document = await services.GetRequiredKeyedService<IOpenApiDocumentProvider>(DocumentName).GetOpenApiDocumentAsync(http.RequestAborted);
        // Not the request's Host header, as MapOpenApi does: any client may send one, and the document (cached by a proxy,
        // opened in the reference page) would then send the next reader's requests and API key to that host.
        document.Servers = publicUrl is null ? [] : [new OpenApiServer { Url = publicUrl.AbsoluteUri.TrimEnd('/') }];
        var version = services.GetRequiredService<IOptionsMonitor<OpenApiOptions>>().Get(DocumentName).OpenApiVersion;
        return Results.Text(await document.SerializeAsJsonAsync(version, http.RequestAborted), "application/json;charset=utf-8");
    }

    private static ServiceProvider DocumentServices(WebApplication app, IServiceCollection appServices)
    {
        IServiceCollection services = new ServiceCollection();
        foreach (var service in appServices)
            services.Add(service);
        // The live instances the document is made from (registered last, so they win over the copied registrations):
        // a copy would be a second route table, host environment or Kestrel.
        services.AddSingleton(app.Services.GetRequiredService<EndpointDataSource>());
        services.AddSingleton(app.Services.GetRequiredService<IHostEnvironment>());
        services.AddSingleton(app.Services.GetRequiredService<IWebHostEnvironment>());
        services.AddSingleton(app.Services.GetRequiredService<IServer>());
        services.AddOpenApi(DocumentName, options =>
        {
            options.AddOperationTransformer(DescribeOperationAsync);
            options.AddSchemaTransformer(OmittedNullsAreOptional);
            options.AddDocumentTransformer(DescribeDocument);
        });
        return services.BuildServiceProvider();
    }

    private static Task DescribeDocument(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info = new OpenApiInfo
        {
            Title = "AgentWorker API",
            Version = "v1",
            Description = "Queue agent jobs, follow them and act on them. Errors are RFC 9457 problem+json naming the field. " +
                "Routes marked with the bearer scheme need `Authorization: Bearer <WORKER_API_KEY>` when a key is configured.",
        };
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[Bearer] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "The worker's API key (WORKER_API_KEY or AGENT_WEBHOOK_SECRET).",
        };
        foreach (var (path, summary) in OperationalRoutes)
        {
            if (document.Paths.TryGetValue(path, out var item) && item.Operations?.GetValueOrDefault(HttpMethod.Get) is { } operation)
            {
                operation.Summary = summary;
                operation.Tags = new HashSet<OpenApiTagReference> { new(Operations, document) };
            }
        }
        document.Paths["/metrics"] = new OpenApiPathItem
        {
            Operations = new Dictionary<HttpMethod, OpenApiOperation>
            {
                [HttpMethod.Get] = new OpenApiOperation
                {
                    Summary = "Prometheus metrics (no token needed)",
                    Tags = new HashSet<OpenApiTagReference> { new(Operations, document) },
                    Responses = new OpenApiResponses
                    {
                        ["200"] = new OpenApiResponse
                        {
                            Description = "Prometheus text exposition format",
                            Content = new Dictionary<string, OpenApiMediaType> { ["text/plain"] = new() },
                        },
                    },
                },
            },
        };
        // The tag list is rebuilt from what the operations carry now (the health routes were retagged above).
        document.Tags = new HashSet<OpenApiTag>(
            document.Paths.Values.SelectMany(p => p.Operations?.Values ?? Enumerable.Empty<OpenApiOperation>()).SelectMany(o => o.Tags ?? Enumerable.Empty<OpenApiTagReference>()).Select(t => t.Name).Distinct()
                .Select(name => new OpenApiTag { Name = name }));
        return Task.CompletedTask;
    }

    /// <summary>The API leaves null properties out (WhenWritingNull), so a property that may be null is never required.</summary>
    private static Task OmittedNullsAreOptional(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (schema.Required is { Count: > 0 } required)
        {
            foreach (var property in context.JsonTypeInfo.Properties.Where(p => p.IsGetNullable))
                required.Remove(property.Name);
        }
        return Task.CompletedTask;
    }

    private static async Task DescribeOperationAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var route = "/" + context.Description.RelativePath;
        if (metadata.OfType<BearerAuthFilter>().Any())
            operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Bearer, context.Document)] = [] }];
        foreach (var parameter in (operation.Parameters ?? []).OfType<OpenApiParameter>())
        {
            if (parameter.Name is { } name && ParameterDocs.TryGetValue((route, name), out var description))
                parameter.Description = description;
        }
        var json = context.ApplicationServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        if (route == "/v1/jobs/{id}" && context.Description.HttpMethod == "GET")
            SetExamples(operation, "200", new Dictionary<string, JsonNode?> { ["succeeded"] = JsonSerializer.SerializeToNode(SucceededJob, json) });
        if (route == "/v1/jobs/{id}/logs" && operation.Responses?.GetValueOrDefault("200") is { Content: { } content })
        {
            content["text/event-stream"] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Server-sent events; each data line is a JobEvent as JSON." },
                Example = JsonValue.Create(FollowExample),
            };
        }
        if (!metadata.Contains(JobIntake))
            return;

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = "A job in any of the three accepted shapes. Fields are validated; errors name the field as the client spelled it.",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new()
                {
                    Schema = new OpenApiSchema
                    {
                        OneOf =
                        [
                            await context.GetOrCreateSchemaAsync(typeof(NativeJobRequest), cancellationToken: cancellationToken),
                            await context.GetOrCreateSchemaAsync(typeof(SeedQueueJobRequest), cancellationToken: cancellationToken),
                            await context.GetOrCreateSchemaAsync(typeof(SeedReliableJobRequest), cancellationToken: cancellationToken),
                        ],
                    },
                    Examples = JobShapeExamples.ToDictionary(
                        e => e.Name,
                        e => (IOpenApiExample)new OpenApiExample { Summary = e.Summary, Value = JsonNode.Parse(e.Json) }),
                },
            },
        };
        SetExamples(operation, "202", JobShapeExamples.ToDictionary(
            e => e.Name,
            e => JsonSerializer.SerializeToNode(new SubmitAnswer(JsonNode.Parse(e.Json)!["id"]!.GetValue<string>(), JobState.Queued, Created: true), json)));
        SetExamples(operation, "400", new Dictionary<string, JsonNode?>
        {
            ["missing_repo"] = JsonSerializer.SerializeToNode(new
            {
                type = "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                title = "Invalid job request",
                status = 400,
                detail = "repoUrl: required",
                errors = new Dictionary<string, string[]> { ["repoUrl"] = ["required"] },
            }, json),
        });
    }

    private static readonly DateTimeOffset ExampleTime = new(2026, 1, 1, 9, 0, 0, TimeSpan.Zero);

    private static JobView SucceededJob => new(
        "audit-2026-01-01", "ssot_auditor", new RepoRef("https://git.example/team/app.git", "main"), "Look for duplicated settings",
        JobMode.DryRun, CreateBranch: null, CommitMessage: null, Network: NetworkMode.None, AllowHosts: null, Budget: null, McpUrl: null, State: JobState.Succeeded, Attempts: 1, MaxAttempts: 3, Priority: 0, TimeoutSeconds: 600,
        CreatedAt: ExampleTime, UpdatedAt: ExampleTime.AddSeconds(14), RunAt: ExampleTime, FinishedAt: ExampleTime.AddSeconds(14),
        CancelRequested: false, Error: null,
        Result: new JobResult
        {
            Findings = [new Finding("medium", "duplicate-file", "src/two/settings.py", 1, "same content as src/one/settings.py")],
            HealthScore = 96,
            ExitCode = 0,
            Summary = "1 finding",
            DurationSeconds = 12.8,
            Resources = new ResourceReport(PeakMemoryBytes: 48_234_496, CpuSeconds: 1.9, WallSeconds: 12.8, ExitSignal: null, OutOfMemory: false),
        },
        AttemptHistory: [new AttemptRecord(1, "host-a:4242:0", ExampleTime.AddSeconds(1), ExampleTime.AddSeconds(14), "succeeded", 0, null)],
        Metadata: null);

    private static void SetExamples(OpenApiOperation operation, string status, Dictionary<string, JsonNode?> examples)
    {
        if (operation.Responses?.GetValueOrDefault(status) is not { Content: { } content })
            return;
        foreach (var media in content.Values)
        {
            media.Examples = examples.ToDictionary(e => e.Key, e => (IOpenApiExample)new OpenApiExample { Value = e.Value });
        }
    }

    private sealed class JobIntakeMarker;
}
