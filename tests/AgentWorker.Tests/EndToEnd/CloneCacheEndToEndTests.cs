using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>The clone cache as a user meets it: the real worker, jobs over HTTP, the cache in the data directory.</summary>
public sealed class CloneCacheEndToEndTests : IDisposable
{
    private const string ApiKey = "dev_secret";
    private readonly TempDirectory _dir = new("aw-e2e-cache");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["README.md"] = "demo\n" });

    [Theory]
    [InlineData("on")]
    [InlineData("off")]
    public async Task Jobs_CloneThroughAMirrorInTheDataDir_UnlessTheCacheIsOff(string cache)
    {
        var port = WorkerProcess.FreePort();
        var data = _dir.Combine("data");
        await using var worker = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = data,
            ["WORK_DIR"] = _dir.Combine("work"),
            ["SANDBOX"] = "none",
            ["CLONE_CACHE"] = cache,
        }, "serve");
        using var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);

        foreach (var id in new[] { "first", "repeat" })
        {
            var job = new JsonObject { ["id"] = id, ["agent"] = "ssot_auditor", ["repo"] = new JsonObject { ["url"] = _repo.Path } };
            var response = await client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            await Eventually.UntilAsync(
                () => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"),
                j => j.GetProperty("state").GetString() == "succeeded",
                TimeSpan.FromSeconds(90),
                $"job {id} succeeded\n{worker.Output}");
        }

        var mirrors = Directory.Exists(Path.Combine(data, "clone-cache")) ? Directory.GetDirectories(Path.Combine(data, "clone-cache"), "*.git") : [];
        Assert.Equal(cache == "on" ? 1 : 0, mirrors.Length);
        Assert.DoesNotContain("Clone cache not used", worker.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _repo.Dispose();
        _dir.Dispose();
    }
}
