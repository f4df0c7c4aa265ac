using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Allocation;

/// <summary>
/// Acceptance 3: a real worker borrows from the real reference allocator (`agent-worker allocator serve`) before each
/// attempt and returns the instance on every outcome — success, failure, timeout, cancel, shutdown, and a crash
/// (returned by the next worker's ledger sweep).
/// </summary>
public sealed class InstanceAllocatorTests : IAsyncLifetime
{
    private const string ApiKey = "alloc-test-key";
    private const string McpUrl = "http://127.0.0.1:9/mcp";
    private const string InstanceApi = "http://127.0.0.1:9/api";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly TempDirectory _dir = new("aw-alloc");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["README.md"] = "x\n" });
    private readonly string _marker = Random.Shared.Next(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
    private WorkerProcess _allocator = null!;
    private HttpClient _allocatorClient = null!;
    private int _allocatorPort;

    public async Task InitializeAsync()
    {
        File.WriteAllText(_dir.Combine("pool.yaml"), $"""
            instances:
              - id: inst-1
                mcp_connection_url: {McpUrl}
                api_url: {InstanceApi}
            """);
        File.WriteAllText(_dir.Combine("agents.yaml"), $$"""
            agents:
              - id: ok
                command: ["sh", "-c", "echo \"mcp=$MCP_CONNECTION_URL instance=$AGENT_WORKER_INSTANCE_ID api=$AGENT_WORKER_INSTANCE_API_URL\""]
              - id: fail
                command: ["sh", "-c", "echo broken >&2; exit 3"]
              - id: hang
                command: ["sh", "-c", "echo ready; exec sleep {{_marker}}"]
            """);
        (_allocator, _allocatorClient, _allocatorPort) = await StartAllocatorAsync(_dir.Combine("pool.yaml"));
    }

    private async Task<(WorkerProcess, HttpClient, int)> StartAllocatorAsync(string pool)
    {
        var port = WorkerProcess.FreePort();
        var process = WorkerProcess.Start(new Dictionary<string, string> { ["PORT"] = port.ToString(CultureInfo.InvariantCulture), ["AGENT_WORKER_DATA"] = _dir.Combine("allocator-data") },
            "allocator", "serve", "--pool", pool);
        var client = WorkerProcess.Client(port, null);
        await Eventually.UntilAsync(async () =>
        {
            try
            {
                return (await client.GetAsync("/instances")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, ok => ok, TimeSpan.FromSeconds(30), $"allocator up\n{process.Output}");
        return (process, client, port);
    }

    private Dictionary<string, string> Environment(int port, string? allocatorUrl = null) => new()
    {
        ["AGENT_WEBHOOK_SECRET"] = ApiKey,
        ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
        ["HOST"] = "127.0.0.1",
        ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
        ["WORK_DIR"] = _dir.Combine("work"),
        ["AGENTS_FILE"] = _dir.Combine("agents.yaml"),
        ["RATE_LIMIT_PER_MINUTE"] = "0",
        ["SHUTDOWN_GRACE_SECONDS"] = "0",
        ["ALLOCATOR_API_URL"] = allocatorUrl ?? $"http://127.0.0.1:{_allocatorPort}",
    };

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(string? allocatorUrl = null)
    {
        var port = WorkerProcess.FreePort();
        var worker = WorkerProcess.Start(Environment(port, allocatorUrl), "serve");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    private async Task SubmitAsync(HttpClient client, string id, string agent, int maxAttempts = 1, int? timeoutSeconds = null, string? mcpUrl = null)
    {
        var job = new JsonObject { ["id"] = id, ["agent"] = agent, ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = maxAttempts };
        if (timeoutSeconds is { } timeout)
            job["timeoutSeconds"] = timeout;
        if (mcpUrl is not null)
            job["mcpUrl"] = mcpUrl;
        var response = await client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    private static async Task<JsonElement> WaitForStateAsync(HttpClient client, string id, string state, WorkerProcess worker) =>
        await Eventually.UntilAsync(() => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"), j => j.GetProperty("state").GetString() == state,
            Deadline, $"job {id} {state}\n{worker.Output}");

    private Task<JsonElement> InstanceAsync() =>
        _allocatorClient.GetFromJsonAsync<JsonElement>("/instances").ContinueWith(t => t.Result.EnumerateArray().Single(), TaskScheduler.Default);

    /// <summary>Lent out and borrowed <paramref name="borrows"/> times, or back with as many returns as borrows.</summary>
    private async Task<JsonElement> WaitForInstanceAsync(bool lent, int borrows, string why) =>
        await Eventually.UntilAsync(InstanceAsync,
            i => i.GetProperty("lent").GetBoolean() == lent && i.GetProperty("borrows").GetInt32() == borrows && i.GetProperty("returns").GetInt32() == (lent ? borrows - 1 : borrows),
            Deadline, why);

    private static async Task<string> LogsAsync(HttpClient client, string id) =>
        string.Join('\n', (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs")).GetProperty("items").EnumerateArray().Select(e => e.GetProperty("message").GetString()));

    [Fact]
    public async Task Success_ReturnsTheInstance_AndItsMcpUrlBecomesTheJobs()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "ok-1", "ok");
            await WaitForStateAsync(client, "ok-1", "succeeded", worker);
            await WaitForInstanceAsync(lent: false, borrows: 1, "instance returned after success");

            var logs = await LogsAsync(client, "ok-1");
            Assert.Contains($"mcp={McpUrl} instance=inst-1 api={InstanceApi}", logs);
            Assert.Contains("borrowed instance inst-1", logs);
        }
    }

    [Fact]
    public async Task JobWithItsOwnMcpUrl_KeepsIt()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "own-1", "ok", mcpUrl: "http://127.0.0.1:7/own");
            await WaitForStateAsync(client, "own-1", "succeeded", worker);

            Assert.Contains("mcp=http://127.0.0.1:7/own instance=inst-1", await LogsAsync(client, "own-1"));
            await WaitForInstanceAsync(lent: false, borrows: 1, "instance returned");
        }
    }

    [Fact]
    public async Task Failure_ReturnsTheInstance()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "fail-1", "fail");
            await WaitForStateAsync(client, "fail-1", "dead", worker);
            await WaitForInstanceAsync(lent: false, borrows: 1, "instance returned after failure");
        }
    }

    [Fact]
    public async Task Timeout_ReturnsTheInstance()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "slow-1", "hang", timeoutSeconds: 1);
            await WaitForStateAsync(client, "slow-1", "timed_out", worker);
            await WaitForInstanceAsync(lent: false, borrows: 1, "instance returned after timeout");
        }
    }

    [Fact]
    public async Task Cancel_ReturnsTheInstance()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "cancel-1", "hang");
            await WaitForStateAsync(client, "cancel-1", "running", worker);
            await WaitForInstanceAsync(lent: true, borrows: 1, "instance lent while the job runs");

            Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs/cancel-1/cancel", null)).StatusCode);

            await WaitForStateAsync(client, "cancel-1", "cancelled", worker);
            await WaitForInstanceAsync(lent: false, borrows: 1, "instance returned after cancel");
        }
    }

    [Fact]
    public async Task Shutdown_ReturnsTheInstance_BeforeTheWorkerExits()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "stop-1", "hang");
            await WaitForStateAsync(client, "stop-1", "running", worker);
            await WaitForInstanceAsync(lent: true, borrows: 1, "instance lent while the job runs");

            worker.Terminate();
            Assert.Equal(0, await worker.WaitForExitAsync(Deadline));

            // Checked once, after the exit: the worker returned it itself, nothing else could have.
            var instance = await InstanceAsync();
            Assert.False(instance.GetProperty("lent").GetBoolean(), worker.Output);
            Assert.Equal(1, instance.GetProperty("returns").GetInt32());
        }
    }

    [Fact]
    public async Task Crash_TheNextWorkerReturnsTheInstance_FromTheLedger()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "crash-1", "hang");
            // The agent runs: the instance was borrowed and written to the ledger before it started.
            await Eventually.UntilAsync(() => LogsAsync(client, "crash-1"), logs => logs.Split('\n').Contains("ready"), Deadline, "agent started");
            await WaitForInstanceAsync(lent: true, borrows: 1, "instance lent while the job runs");
            worker.KillHard();
            await worker.WaitForExitAsync(Deadline);
        }
        Assert.True((await InstanceAsync()).GetProperty("lent").GetBoolean());

        var (next, nextClient) = await ServeAsync();
        await using (next)
        using (nextClient)
        {
            await WaitForInstanceAsync(lent: false, borrows: 1, $"the next worker returned the crashed attempt's instance\n{next.Output}");
            Assert.Contains("worker died or its return had failed", next.Output);
        }
    }

    [Fact]
    public async Task AllocatorUnreachable_FailsTheAttempt_WithTheReason()
    {
        var (worker, client) = await ServeAsync($"http://127.0.0.1:{WorkerProcess.FreePort()}");
        await using (worker)
        using (client)
        {
            await SubmitAsync(client, "noalloc-1", "ok");
            var job = await WaitForStateAsync(client, "noalloc-1", "dead", worker);

            Assert.StartsWith("instance allocator: ", job.GetProperty("error").GetString());
        }
    }

    [Fact]
    public async Task ReferenceAllocator_RefusesWrongReturns_AndLendsNothingWhenEmpty()
    {
        var borrow = await _allocatorClient.PostAsync("/borrow", null);
        var lent = JsonNode.Parse(await borrow.Content.ReadAsStringAsync())!.AsObject();
        var exhausted = await _allocatorClient.PostAsync("/borrow", null);
        var altered = lent.DeepClone().AsObject();
        altered["api_url"] = "http://elsewhere";
        var wrongBody = await _allocatorClient.PostAsync("/return", new StringContent(altered.ToJsonString(), Encoding.UTF8, "application/json"));
        var returned = await _allocatorClient.PostAsync("/return", new StringContent(lent.ToJsonString(), Encoding.UTF8, "application/json"));
        var twice = await _allocatorClient.PostAsync("/return", new StringContent(lent.ToJsonString(), Encoding.UTF8, "application/json"));
        var noId = await _allocatorClient.PostAsync("/return", new StringContent("{}", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, borrow.StatusCode);
        Assert.Equal(new JsonObject { ["id"] = "inst-1", ["mcp_connection_url"] = McpUrl, ["api_url"] = InstanceApi }.ToJsonString(), lent.ToJsonString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, exhausted.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, wrongBody.StatusCode);
        Assert.Equal(HttpStatusCode.OK, returned.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noId.StatusCode);
        Assert.Contains("id", await noId.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ReferenceAllocator_BadPoolFile_ExitsTwo_NamingTheOption()
    {
        File.WriteAllText(_dir.Combine("bad.yaml"), "instances:\n  - mcp_connection_url: http://x\n");
        await using var process = WorkerProcess.Start(new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = _dir.Combine("bad-data") }, "allocator", "serve", "--pool", _dir.Combine("bad.yaml"));

        Assert.Equal(2, await process.WaitForExitAsync(Deadline));
        Assert.Contains("invalid option --pool", process.Output);
        Assert.Contains("instances[0].id: required", process.Output);
    }

    public async Task DisposeAsync()
    {
        _allocatorClient.Dispose();
        await _allocator.DisposeAsync();
        Processes.KillWithArgument(_marker);
        _repo.Dispose();
        _dir.Dispose();
    }
}
