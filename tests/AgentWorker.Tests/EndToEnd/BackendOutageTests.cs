using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using Xunit.Abstractions;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// The queue server goes away for 5 s in the middle of a run and comes back on the same port and data: a real `serve`
/// and a real `run` worker must ride it out, /health and /ready must show it, intake must answer 503, and afterwards
/// every job must have succeeded exactly once. Each test starts a server of its own so it may stop it.
/// </summary>
[Collection(HeavyScenarios.Name)]
public sealed class BackendOutageTests(ITestOutputHelper output) : IDisposable
{
    private const int JobCount = 200;
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);

    private readonly NoOpJobs _jobs = new();

    [Fact]
    public async Task Redis_StoppedForFiveSeconds_WorkersReconnect_HealthShowsIt_EveryJobSucceedsOnce()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await RunAsync("redis", new Dictionary<string, string> { ["REDIS_URL"] = redis.Url, ["QUEUE_NAME"] = "outage" }, redis.StopAsync, redis.StartAgainAsync);
    }

    [Fact]
    public async Task Postgres_StoppedForFiveSeconds_WorkersReconnect_HealthShowsIt_EveryJobSucceedsOnce()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await RunAsync("postgres", new Dictionary<string, string> { ["POSTGRES_URL"] = postgres.Url }, postgres.StopAsync, postgres.StartAgainAsync);
    }

    private async Task RunAsync(string name, Dictionary<string, string> backend, Func<Task> stop, Func<Task> start)
    {
        var port = WorkerProcess.FreePort();
        await using var serving = WorkerProcess.Start(_jobs.Environment(backend, port, "info"), "serve");
        using var client = WorkerProcess.Client(port, NoOpJobs.ApiKey);
        await serving.WaitReadyAsync(client);
        await using var running = WorkerProcess.Start(_jobs.Environment(backend, logLevel: "info"), "run", "--timeout", "1");
        var ids = Enumerable.Range(1, JobCount).Select(n => $"out-{n:D3}").ToList();
        await _jobs.EnqueueAsync(client, ids);
        await Eventually.UntilAsync(() => NoOpJobs.HealthAsync(client), h => h.GetProperty("succeeded").GetInt32() >= JobCount / 4, Deadline, "a quarter of the jobs succeeded");

        await stop();
        var clock = Stopwatch.StartNew();
        var (health, ready) = (new List<(HttpStatusCode Status, JsonElement Body)>(), new List<HttpStatusCode>());
        HttpResponseMessage? intake = null;
        HttpResponseMessage? read = null;
        // The outage lasts 5 s whatever the checks below cost; meanwhile the HTTP side is asked what it sees.
        while (clock.Elapsed < Outage)
        {
            using (var response = await client.GetAsync("/health"))
                health.Add((response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>()));
            using (var response = await client.GetAsync("/ready"))
                ready.Add(response.StatusCode);
            if (intake is null && health[^1].Status == HttpStatusCode.ServiceUnavailable)
            {
                intake = await client.PostAsync("/v1/jobs", _jobs.JobFor("during-outage"));
                read = await client.GetAsync("/v1/jobs/out-001");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }
        await start();
        var restarted = clock.Elapsed;
        await Eventually.UntilAsync(async () => (await client.GetAsync("/ready")).StatusCode, s => s == HttpStatusCode.OK, Deadline, "ready again");
        var recovered = clock.Elapsed - restarted;
        using var after = await client.PostAsync("/v1/jobs", _jobs.JobFor("after-outage"));

        await Eventually.UntilAsync(() => NoOpJobs.HealthAsync(client), h => h.GetProperty("succeeded").GetInt32() == JobCount + 1, Deadline, $"every job succeeded\n{serving.Output}\n{running.Output}");
        var drained = clock.Elapsed - restarted;

        var down = health.Where(h => h.Status == HttpStatusCode.ServiceUnavailable).Select(h => h.Body).ToList();
        Assert.NotEmpty(down);
        Assert.All(down, body =>
        {
            Assert.Equal("unhealthy", body.GetProperty("status").GetString());
            Assert.Equal(name, body.GetProperty("backend").GetProperty("name").GetString());
            Assert.False(body.GetProperty("backend").GetProperty("up").GetBoolean());
            Assert.False(string.IsNullOrEmpty(body.GetProperty("backend").GetProperty("error").GetString()));
        });
        Assert.Contains(HttpStatusCode.ServiceUnavailable, ready);

        Assert.NotNull(intake);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, intake.StatusCode);
        Assert.Equal("application/problem+json", intake.Content.Headers.ContentType?.MediaType);
        Assert.NotEmpty(intake.Headers.RetryAfter?.ToString() ?? "");
        Assert.Contains("backend", (await intake.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/jobs/during-outage")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, read!.StatusCode);
        Assert.Equal("application/problem+json", read.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Accepted, after.StatusCode);

        var healthAfter = await NoOpJobs.HealthAsync(client);
        Assert.Equal("ok", healthAfter.GetProperty("status").GetString());
        Assert.True(healthAfter.GetProperty("backend").GetProperty("outages").GetInt32() >= 1);
        var retried = _jobs.AssertEachSucceededOnce(await NoOpJobs.ListAllAsync(client), [.. ids, "after-outage"]);
        // Both processes' worker slots saw the outage end, not only the HTTP side.
        foreach (var worker in new[] { serving, running })
        {
            Assert.False(worker.HasExited, $"a worker exited:\n{worker.Output}");
            Assert.Contains($"Queue backend {name} reachable again", worker.Output, StringComparison.Ordinal);
        }
        output.WriteLine($"{name}: down {restarted.TotalSeconds:0.0}s, {down.Count}/{health.Count} /health answers 503; ready {recovered.TotalSeconds:0.00}s after the restart; "
            + $"{JobCount + 1} jobs succeeded once, {retried} with more than one attempt, all done {drained.TotalSeconds:0.0}s after the restart");
        intake.Dispose();
        read.Dispose();
    }

    public void Dispose() => _jobs.Dispose();
}
