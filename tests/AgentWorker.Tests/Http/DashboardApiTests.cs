using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AgentWorker.Tests.Http;

/// <summary>What `serve` adds for the dashboard: its embedded files, the agent list, queue history, the repo filter and the OpenAPI document.</summary>
public sealed class DashboardApiTests
{
    private const string Agents = """
        agents:
          - id: noop
            description: does nothing
            command: ["true"]
            network: full
            timeoutSeconds: 30
        """;

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<HttpResponseMessage> GetAnonymousAsync(ApiHost host, string path, Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = null;
        configure?.Invoke(request);
        host.Client.DefaultRequestHeaders.Authorization = null;
        try
        {
            return await host.Client.SendAsync(request);
        }
        finally
        {
            host.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiHost.ApiKey);
        }
    }

    [Fact]
    public async Task Dashboard_Root_ServesTheEmbeddedPageWithoutTokenUnderAStrictPolicy()
    {
        await using var host = await ApiHost.StartAsync();

        var page = await GetAnonymousAsync(host, "/");
        var html = await page.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<script src=\"/assets/app.js\" defer></script>", html, StringComparison.Ordinal);
        var policy = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("connect-src 'self'", policy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        // No file the page loads comes from another origin.
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dashboard_Assets_AreGzippedOnRequestAndRevalidatedByETag()
    {
        await using var host = await ApiHost.StartAsync();

        var plain = await GetAnonymousAsync(host, "/assets/app.js");
        var zipped = await GetAnonymousAsync(host, "/assets/app.js", r => r.Headers.AcceptEncoding.ParseAdd("gzip"));
        var etag = plain.Headers.ETag!;
        var again = await GetAnonymousAsync(host, "/assets/app.js", r => r.Headers.IfNoneMatch.Add(etag));

        var script = await plain.Content.ReadAsStringAsync();
        Assert.Equal("text/javascript", plain.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Authorization", script, StringComparison.Ordinal);
        Assert.Equal("gzip", zipped.Content.Headers.ContentEncoding.Single());
        var compressed = await zipped.Content.ReadAsByteArrayAsync();
        Assert.True(compressed.Length < Encoding.UTF8.GetByteCount(script) / 2, $"gzip gave {compressed.Length} bytes");
        await using (var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress))
        using (var reader = new StreamReader(gzip))
            Assert.Equal(script, await reader.ReadToEndAsync());
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
    }

    [Theory]
    [InlineData("/assets/missing.js")]
    [InlineData("/assets/..%2Fappsettings.json")]
    public async Task Dashboard_UnknownFile_Is404Problem(string path)
    {
        await using var host = await ApiHost.StartAsync();

        var response = await GetAnonymousAsync(host, path);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Agents_List_ShowsBuiltInsAndRegistryEntriesButNotTheirCommands()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);

        var list = await host.Client.GetFromJsonAsync<JsonElement>("/v1/agents");
        var anonymous = await GetAnonymousAsync(host, "/v1/agents");

        var items = list.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(items.Select(a => a.GetProperty("id").GetString()).Order(StringComparer.Ordinal), items.Select(a => a.GetProperty("id").GetString()));
        Assert.Contains(items, a => a.GetProperty("id").GetString() == "ssot_auditor" && a.GetProperty("builtIn").GetBoolean());
        var noop = items.Single(a => a.GetProperty("id").GetString() == "noop");
        Assert.False(noop.GetProperty("builtIn").GetBoolean());
        Assert.Equal("does nothing", noop.GetProperty("description").GetString());
        Assert.Equal("full", noop.GetProperty("network").GetString());
        Assert.Equal(30, noop.GetProperty("timeoutSeconds").GetInt32());
        Assert.False(noop.TryGetProperty("command", out _));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task StatsHistory_NeedsTheTokenAndStartsWithASampleOfTheQueue()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);

        var history = await AgentWorker.Testing.Eventually.UntilAsync(
            () => host.Client.GetFromJsonAsync<JsonElement>("/v1/stats/history"),
            h => h.GetProperty("samples").GetArrayLength() > 0, TimeSpan.FromSeconds(10), "first queue sample");
        var anonymous = await GetAnonymousAsync(host, "/v1/stats/history");

        Assert.Equal(5, history.GetProperty("intervalSeconds").GetInt32());
        var sample = history.GetProperty("samples")[0];
        Assert.Equal(0, sample.GetProperty("queued").GetInt64());
        Assert.True(sample.TryGetProperty("at", out _));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task List_RepoFilter_MatchesPartOfTheUrl()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        foreach (var (id, repo) in new[] { ("r1", "/srv/git/app"), ("r2", "/srv/git/tool"), ("r3", "/srv/git/app-2") })
            await host.Client.PostAsync("/v1/jobs", Json($$$"""{"id":"{{{id}}}","agent":"noop","repo":{"url":"{{{repo}}}"}}"""));

        var app = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs?repo=git/app");
        var any = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs?repo=");

        Assert.Equal(["r3", "r1"], app.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetString()));
        Assert.Equal(2, app.GetProperty("total").GetInt32());
        Assert.Equal(3, any.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task OpenApi_Document_DescribesEveryRouteAndWhichNeedTheToken()
    {
        await using var host = await ApiHost.StartAsync();

        var document = await (await GetAnonymousAsync(host, "/openapi/v1.json")).Content.ReadFromJsonAsync<JsonElement>();

        var paths = document.GetProperty("paths");
        var operations = paths.EnumerateObject()
            .SelectMany(p => p.Value.EnumerateObject().Select(o => (Route: $"{o.Name.ToUpperInvariant()} {p.Name}", Operation: o.Value)))
            .ToDictionary(o => o.Route, o => o.Operation);
        string[] secured =
        [
            "POST /v1/jobs", "POST /queue", "POST /api/tasks", "GET /v1/jobs", "GET /v1/jobs/{id}", "GET /v1/jobs/{id}/logs",
            "POST /v1/jobs/{id}/cancel", "POST /v1/jobs/{id}/retry", "GET /v1/agents", "GET /v1/stats/history",
            "GET /v1/jobs/{id}/receipt", "GET /v1/jobs/{id}/artifacts", "GET /v1/jobs/{id}/artifacts/{name}", "GET /v1/jobs/{id}/deliveries",
        ];
        string[] open = ["GET /health", "GET /ready", "GET /metrics"];
        Assert.Equal(secured.Concat(open).Order(StringComparer.Ordinal), operations.Keys.Order(StringComparer.Ordinal));
        Assert.All(secured, route => Assert.Equal("bearer", operations[route].GetProperty("security")[0].EnumerateObject().Single().Name));
        Assert.All(open, route => Assert.False(operations[route].TryGetProperty("security", out _), route));
        Assert.All(operations, o => Assert.False(string.IsNullOrEmpty(o.Value.GetProperty("summary").GetString()), o.Key));
        Assert.Equal("http", document.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer").GetProperty("type").GetString());
        var follow = operations["GET /v1/jobs/{id}/logs"].GetProperty("responses").GetProperty("200").GetProperty("content");
        Assert.True(follow.TryGetProperty("text/event-stream", out _));
        var job = operations["GET /v1/jobs/{id}"].GetProperty("responses").GetProperty("200").GetProperty("content").GetProperty("application/json");
        Assert.Equal("succeeded", job.GetProperty("examples").GetProperty("succeeded").GetProperty("value").GetProperty("state").GetString());
    }

    [Theory]
    [InlineData("/v1/jobs")]
    [InlineData("/queue")]
    [InlineData("/api/tasks")]
    public async Task OpenApi_JobShapeExamples_AreAcceptedAsTheDocumentSays(string route)
    {
        await using var host = await ApiHost.StartAsync(new() { ["--default-agent"] = "ssot_auditor" });
        var document = await host.Client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var operation = document.GetProperty("paths").GetProperty(route).GetProperty("post");
        var body = operation.GetProperty("requestBody").GetProperty("content").GetProperty("application/json");
        var answers = operation.GetProperty("responses").GetProperty("202").GetProperty("content").GetProperty("application/json").GetProperty("examples");
        var shapes = body.GetProperty("schema").GetProperty("oneOf").EnumerateArray().ToList();

        var examples = body.GetProperty("examples").EnumerateObject().ToList();

        Assert.Equal(["native", "seed_queue", "seed_reliable_queue"], examples.Select(e => e.Name));
        foreach (var (example, shape) in examples.Zip(shapes))
        {
            var value = example.Value.GetProperty("value");
            // Each example uses only the fields its schema names, and the worker accepts it with the answer documented.
            var known = shape.GetProperty("properties").EnumerateObject().Select(p => p.Name).ToHashSet();
            Assert.All(value.EnumerateObject(), field => Assert.Contains(field.Name, known));
            var response = await host.Client.PostAsync(route, Json(value.GetRawText()));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var documented = JsonNode.Parse(answers.GetProperty(example.Name).GetProperty("value").GetRawText());
            var actual = JsonNode.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(JsonNode.DeepEquals(documented, actual), $"{example.Name}: documented {documented?.ToJsonString()}, got {actual?.ToJsonString()}");
        }
    }
}
