using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Http;

public sealed class JobsApiTests
{
    private const string Agents = """
        agents:
          - id: noop
            command: ["true"]
        """;

    private static string SeedJob(string id, string agent = "noop", string repo = "/srv/repo") =>
        $$"""{"id":"{{id}}","agentId":"{{agent}}","repoUrl":"{{repo}}","mode":"dry_run","requestedAt":"2026-01-01T00:00:00Z"}""";

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Theory]
    [InlineData("/queue")]
    [InlineData("/api/tasks")]
    [InlineData("/v1/jobs")]
    public async Task Submit_SameIdTwice_Returns202AndStoresOneJob(string route)
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);

        var first = await host.Client.PostAsync(route, Json(SeedJob("test-001")));
        var second = await host.Client.PostAsync(route, Json(SeedJob("test-001")));

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal("/v1/jobs/test-001", first.Headers.Location?.OriginalString);
        Assert.True((await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("created").GetBoolean());
        Assert.False((await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("created").GetBoolean());
        Assert.Equal(1, await host.StoredJobsAsync());
        var job = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs/test-001");
        Assert.Equal("queued", job.GetProperty("state").GetString());
        Assert.Equal("noop", job.GetProperty("agent").GetString());
        Assert.Equal("2026-01-01T00:00:00Z", job.GetProperty("metadata").GetProperty("requestedAt").GetString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer wrong-key-000000")]
    [InlineData("Basic dGVzdDp0ZXN0")]
    public async Task Submit_MissingOrWrongToken_Returns401AndStoresNothing(string? authorization)
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/queue") { Content = Json(SeedJob("x1")) };
        request.Headers.Authorization = null;
        if (authorization is not null)
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        host.Client.DefaultRequestHeaders.Authorization = null;

        var response = await host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(401, (await ProblemAsync(response)).GetProperty("status").GetInt32());
        Assert.Equal(0, await host.StoredJobsAsync());
    }

    [Theory]
    [InlineData("{not json", "body")]
    [InlineData("""{"id":"x","agentId":"noop"}""", "repoUrl")]
    [InlineData("""{"id":"x","agentId":"ghost","repoUrl":"/srv/r"}""", "agentId")]
    [InlineData("""{"id":"x","repo_url":"/srv/r"}""", "agent")]
    public async Task Submit_BadRequest_Returns400NamingTheFieldAndStoresNothing(string body, string field)
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);

        var response = await host.Client.PostAsync("/queue", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await ProblemAsync(response);
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        Assert.Contains(field, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await host.StoredJobsAsync());
    }

    [Theory]
    [InlineData("""{"id":"x","agent":"vendor","repo":{"url":"/srv/r"},"allowHosts":["evil.test"]}""", "allowHosts", "'evil.test:443' is not in the agent's list")]
    [InlineData("""{"id":"x","agent":"vendor","repo":{"url":"/srv/r"},"allowHosts":["bad host"]}""", "allowHosts", "'bad host'")]
    [InlineData("""{"id":"x","agent":"vendor","repo":{"url":"/srv/r"},"network":"full"}""", "network", "full would reach any host")]
    [InlineData("""{"id":"x","agent":"noop","repo":{"url":"/srv/r"},"network":"none","allowHosts":["api.vendor.test"]}""", "allowHosts", "only used with network allowlist")]
    public async Task Submit_JobWideningItsAgentsAllowList_Returns400NamingTheField(string body, string field, string message)
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents + "\n  - id: vendor\n    command: [\"true\"]\n    network: allowlist\n    allowHosts: [api.vendor.test]\n");

        var response = await host.Client.PostAsync("/v1/jobs", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await ProblemAsync(response);
        Assert.Contains(message, problem.GetProperty("errors").GetProperty(field)[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await host.StoredJobsAsync());
    }

    [Fact]
    public async Task Submit_JobNarrowingItsAgentsAllowList_IsStoredWithItsHosts()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents + "\n  - id: vendor\n    command: [\"true\"]\n    network: allowlist\n    allowHosts: [\"*.vendor.test\"]\n");

        var response = await host.Client.PostAsync("/v1/jobs", Json("""{"id":"narrow","agent":"vendor","repo":{"url":"/srv/r"},"allowHosts":["API.vendor.test"]}"""));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var job = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs/narrow");
        Assert.Equal("allowlist", job.GetProperty("network").GetString());
        Assert.Equal("api.vendor.test:443", job.GetProperty("allowHosts")[0].GetString());
    }

    [Fact]
    public async Task Submit_BodyOverLimit_Returns413AndStoresNothing()
    {
        await using var host = await ApiHost.StartAsync(new() { ["--max-body-bytes"] = "2048" }, agentsYaml: Agents);
        var big = $$"""{"id":"big","agentId":"noop","repoUrl":"/srv/r","prompt":"{{new string('x', 4096)}}"}""";

        var response = await host.Client.PostAsync("/queue", Json(big));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        await ProblemAsync(response);
        Assert.Equal(0, await host.StoredJobsAsync());
    }

    [Fact]
    public async Task Submit_31stRequestInAMinute_Returns429WithRetryAfter()
    {
        await using var host = await ApiHost.StartAsync(new() { ["--max-queue-depth"] = "0" }, agentsYaml: Agents);

        for (var i = 0; i < 30; i++)
            Assert.Equal(HttpStatusCode.Accepted, (await host.Client.PostAsync("/queue", Json(SeedJob($"r{i}")))).StatusCode);
        var refused = await host.Client.PostAsync("/queue", Json(SeedJob("r30")));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
        await ProblemAsync(refused);
        Assert.Equal(30, await host.StoredJobsAsync());
        Assert.Null(await host.Queue.GetAsync("r30", CancellationToken.None));
    }

    [Fact]
    public async Task Submit_QueueAtDepthLimit_Returns503AndStoresNothing()
    {
        await using var host = await ApiHost.StartAsync(new() { ["--max-queue-depth"] = "2" }, agentsYaml: Agents);
        await host.Client.PostAsync("/queue", Json(SeedJob("d1")));
        await host.Client.PostAsync("/queue", Json(SeedJob("d2")));

        var refused = await host.Client.PostAsync("/queue", Json(SeedJob("d3")));
        var repeat = await host.Client.PostAsync("/queue", Json(SeedJob("d1")));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        await ProblemAsync(refused);
        Assert.Equal(HttpStatusCode.Accepted, repeat.StatusCode);
        Assert.Equal(2, await host.StoredJobsAsync());
    }

    [Fact]
    public async Task OperationalEndpoints_AreOpenWithoutToken()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        await host.Client.PostAsync("/queue", Json(SeedJob("h1")));
        host.Client.DefaultRequestHeaders.Authorization = null;

        var health = await host.Client.GetFromJsonAsync<JsonElement>("/health");
        var ready = await host.Client.GetAsync("/ready");
        var metrics = await host.Client.GetStringAsync("/metrics");

        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(1, health.GetProperty("queueDepth").GetInt32());
        Assert.Equal("sqlite", health.GetProperty("backend").GetProperty("name").GetString());
        Assert.Equal("up", health.GetProperty("backend").GetProperty("status").GetString());
        Assert.True(health.GetProperty("uptimeSeconds").GetDouble() >= 0);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("agent_worker_queue_depth 1", metrics, StringComparison.Ordinal);
        Assert.Contains("agent_worker_jobs{state=\"queued\"} 1", metrics, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Client.GetAsync("/v1/jobs")).StatusCode);
    }

    [Fact]
    public async Task Metrics_FirstScrapeShowsTheGauges_AndAFinishedJobIsCounted()
    {
        // The collectors are made by the first scrape or the first job (PrometheusJobMetrics): neither may lose a family.
        using var repo = TestRepository.Create(new Dictionary<string, string> { ["README.md"] = "metrics\n" });
        await using var host = await ApiHost.StartAsync(runWorkers: true, agentsYaml: Agents);

        var first = await host.Client.GetStringAsync("/metrics");

        Assert.Contains("agent_worker_jobs_running 0", first, StringComparison.Ordinal);
        Assert.Contains("agent_worker_backend_up 1", first, StringComparison.Ordinal);
        Assert.Contains("agent_worker_queue_depth 0", first, StringComparison.Ordinal);
        Assert.Contains("agent_worker_jobs{state=\"succeeded\"} 0", first, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Accepted, (await host.Client.PostAsync("/queue", Json(SeedJob("m1", repo: repo.Path)))).StatusCode);
        var after = await Eventually.UntilAsync(() => host.Client.GetStringAsync("/metrics"),
            // The duration is recorded last (PrometheusJobMetrics.Finished).
            m => m.Contains("agent_worker_job_duration_seconds_count{state=\"succeeded\"} 1", StringComparison.Ordinal), TimeSpan.FromSeconds(60),
            "job m1 timed as succeeded");
        Assert.Contains("agent_worker_jobs_finished_total{state=\"succeeded\",agent=\"noop\"} 1", after, StringComparison.Ordinal);
        Assert.Contains("agent_worker_jobs_running 0", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_FiltersByStateAndPages()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        foreach (var id in new[] { "l1", "l2", "l3" })
            await host.Client.PostAsync("/v1/jobs", Json(SeedJob(id)));
        await host.Client.PostAsync("/v1/jobs/l2/cancel", null);

        var queued = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs?state=queued&limit=1");
        var cancelled = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs?state=cancelled");
        var bad = await host.Client.GetAsync("/v1/jobs?state=sleeping");

        Assert.Equal(2, queued.GetProperty("total").GetInt32());
        Assert.Equal("l3", Assert.Single(queued.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal("l2", Assert.Single(cancelled.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.True((await ProblemAsync(bad)).GetProperty("errors").TryGetProperty("state", out _));
    }

    [Fact]
    public async Task CancelAndRetry_MoveTheJobAndAnswerUnknownIdsWith404()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        await host.Client.PostAsync("/v1/jobs", Json(SeedJob("c1")));

        var cancel = await host.Client.PostAsync("/v1/jobs/c1/cancel", null);
        var cancelAgain = await host.Client.PostAsync("/v1/jobs/c1/cancel", null);
        var afterCancel = await host.Queue.GetAsync("c1", CancellationToken.None);
        var retry = await host.Client.PostAsync("/v1/jobs/c1/retry", null);
        var retryAgain = await host.Client.PostAsync("/v1/jobs/c1/retry", null);

        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal(JobState.Cancelled, afterCancel!.State);
        Assert.Equal(HttpStatusCode.Conflict, cancelAgain.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(JobState.Queued, (await host.Queue.GetAsync("c1", CancellationToken.None))!.State);
        Assert.Equal(HttpStatusCode.Conflict, retryAgain.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.GetAsync("/v1/jobs/ghost")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.PostAsync("/v1/jobs/ghost/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.GetAsync("/v1/jobs/ghost/logs")).StatusCode);
    }
}
