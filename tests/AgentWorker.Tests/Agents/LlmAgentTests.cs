using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Agents;

/// <summary>
/// Acceptance 5, first half: the built-in `llm` agent, run by a real worker in the bubblewrap sandbox, against a loopback
/// fake of the chat-completions API over TLS (the test CA, trusted by the worker through SSL_CERT_FILE). Since issue 17
/// the agent calls the worker's model gateway with a placeholder key, and the gateway calls LLM_BASE_URL with the real
/// one; the endpoint is reached by a name the worker pins to it (EGRESS_RESOLVE, EGRESS_ALLOW_CIDRS), as a real vendor is.
/// </summary>
public sealed class LlmAgentTests : IDisposable
{
    private const string ApiKey = "llm-test-api";
    private const string ModelKey = "sk-or-test-0123456789abcdef";
    private const string StubName = "llm.test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly TempDirectory _dir = new("aw-llm");
    private readonly TestCertificateAuthority _authority = new();
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string>
    {
        ["app/handler.py"] = "def handle(request):\n    return eval(request.body)\n",
        ["README.md"] = "demo service\n",
    });

    private const string Findings = """
        Here is my review:
        ```json
        {"summary": "reviewed with key sk-or-test-0123456789abcdef", "findings": [
          {"severity": "error", "rule": "eval-injection", "file": "app/handler.py", "line": 2, "message": "eval of request data runs attacker code"},
          {"severity": "medium", "rule": "docs", "file": "README.md", "line": null, "message": "README does not say how to run it"},
          {"severity": "low", "rule": "empty", "message": "   "}
        ]}
        ```
        """;

    /// <summary>The fake endpoint for <see cref="StubName"/>, on a port of its own.</summary>
    private async Task<FakeModelVendor> StartStubAsync(Func<VendorRequest, ModelReply> answer)
    {
        var stub = await FakeModelVendor.StartAsync(_authority, [StubName], port: 0);
        stub.Answer = answer;
        return stub;
    }

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(FakeModelVendor stub)
    {
        File.WriteAllText(_dir.Combine("agents.yaml"), """
            agents:
              - id: envdump
                command: ["sh", "-c", "env"]
            """);
        var port = WorkerProcess.FreePort();
        var worker = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = _dir.Combine("agents.yaml"),
            ["RETRY_BASE_DELAY_SECONDS"] = "0",
            ["LLM_BASE_URL"] = $"https://{StubName}:{stub.Port}/v1",
            ["EGRESS_RESOLVE"] = stub.Pins,
            ["EGRESS_ALLOW_CIDRS"] = stub.EndPoint,
            ["SSL_CERT_FILE"] = _authority.WritePem(_dir.Combine("ca.pem")),
            ["LLM_MODEL"] = "default/model",
            ["OPENROUTER_API_KEY"] = ModelKey,
        }, "serve");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    private async Task<JsonElement> RunAsync(HttpClient client, WorkerProcess worker, string id, string agent, string state, JsonObject? extra = null)
    {
        var job = new JsonObject { ["id"] = id, ["agent"] = agent, ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = 1, ["prompt"] = "Look for injection bugs" };
        foreach (var (name, value) in extra ?? [])
            job[name] = value?.DeepClone();
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"))).StatusCode);
        return await Eventually.UntilAsync(() => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"), j => j.GetProperty("state").GetString() == state, Deadline, $"job {id} {state}\n{worker.Output}");
    }

    [Fact]
    public async Task LlmAgent_AgainstTheStub_YieldsItsFindings_WithTheJobsModel()
    {
        await using var stub = await StartStubAsync(_ => new ModelReply { Content = Findings, InputTokens = 700, OutputTokens = 90 });
        var (worker, client) = await ServeAsync(stub);
        await using (worker)
        using (client)
        {
            var job = await RunAsync(client, worker, "llm-1", "llm", "succeeded", new JsonObject { ["model"] = "stub/model-x" });

            var result = job.GetProperty("result");
            var findings = result.GetProperty("findings").EnumerateArray().Select(f => (
                f.GetProperty("severity").GetString(), f.GetProperty("rule").GetString(), f.TryGetProperty("file", out var file) ? file.GetString() : null,
                f.TryGetProperty("line", out var line) ? line.GetInt32() : (int?)null)).ToList();
            Assert.Equal([("high", "eval-injection", "app/handler.py", 2), ("medium", "docs", "README.md", null)], findings);
            Assert.Equal(86, result.GetProperty("healthScore").GetInt32());
            // The model echoed the key: the gateway masked it before the agent saw the answer.
            Assert.Equal($"reviewed with key {new string('*', ModelKey.Length)}", result.GetProperty("summary").GetString());

            // The endpoint got the operator's key from the gateway; the agent never held it.
            var request = Assert.Single(stub.Requests);
            Assert.Equal("/v1/chat/completions", request.Path);
            Assert.Equal($"Bearer {ModelKey}", request.Authorization);
            Assert.Equal("stub/model-x", request.Model);
            var user = request.Json["messages"]![1]!["content"]!.GetValue<string>();
            Assert.Contains("Task: Look for injection bugs", user);
            Assert.Contains("=== FILE: app/handler.py ===\n1| def handle(request):\n2|     return eval(request.body)", user);

            // Through the gateway: one model call, its usage recorded; nothing the agent tried was refused.
            var events = await EventsAsync(client, "llm-1");
            var call = JsonDocument.Parse(Assert.Single(events, e => e.GetProperty("kind").GetString() == "model").GetProperty("message").GetString()!).RootElement;
            Assert.Equal(("llm", 200, 700L, 90L), (call.GetProperty("vendor").GetString(), call.GetProperty("status").GetInt32(), call.GetProperty("inputTokens").GetInt64(), call.GetProperty("outputTokens").GetInt64()));
            Assert.Equal((1, 700L), (result.GetProperty("usage").GetProperty("requests").GetInt32(), result.GetProperty("usage").GetProperty("inputTokens").GetInt64()));
            Assert.DoesNotContain(events, e => e.GetProperty("kind").GetString() == "egress" && e.GetProperty("message").GetString()!.Contains("\"refused\"", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task LlmAgent_RetriesAServerError_AndUsesTheDefaultModel()
    {
        await using var stub = await StartStubAsync(request => request.Number == 1 ? new ModelReply { Status = 503, ErrorMessage = "overloaded" } : new ModelReply { Content = """{"findings": []}""" });
        var (worker, client) = await ServeAsync(stub);
        await using (worker)
        using (client)
        {
            var job = await RunAsync(client, worker, "llm-2", "llm", "succeeded");

            Assert.Equal(100, job.GetProperty("result").GetProperty("healthScore").GetInt32());
            Assert.Equal(2, stub.Requests.Count);
            Assert.All(stub.Requests, r => Assert.Equal(("default/model", ModelKey), (r.Model, r.Key)));
        }
    }

    [Fact]
    public async Task LlmAgent_ReplyWithoutFindingsJson_FailsWithTheReason()
    {
        await using var stub = await StartStubAsync(_ => new ModelReply { Content = "I could not review this, sorry." });
        var (worker, client) = await ServeAsync(stub);
        await using (worker)
        using (client)
        {
            var job = await RunAsync(client, worker, "llm-3", "llm", "dead");

            Assert.Contains("the model did not answer with the findings JSON: I could not review this", job.GetProperty("error").GetString());
        }
    }

    [Fact]
    public async Task TheKeyAndEndpoint_ReachOnlyTheLlmAgent()
    {
        await using var stub = await StartStubAsync(_ => new ModelReply { Content = """{"findings": []}""" });
        var (worker, client) = await ServeAsync(stub);
        await using (worker)
        using (client)
        {
            await RunAsync(client, worker, "env-1", "envdump", "succeeded");
            var logs = (await client.GetFromJsonAsync<JsonElement>("/v1/jobs/env-1/logs")).GetProperty("items").EnumerateArray()
                .Select(e => e.GetProperty("message").GetString()!).ToList();

            Assert.Contains(logs, l => l.StartsWith("AGENT_WORKER_JOB_ID=env-1", StringComparison.Ordinal));
            Assert.DoesNotContain(logs, l => l.Contains("OPENROUTER_API_KEY", StringComparison.Ordinal) || l.Contains("LLM_BASE_URL", StringComparison.Ordinal));
        }
    }

    /// <summary>Every event of the job, as <c>GET /v1/jobs/{id}/logs</c> returns them.</summary>
    private static async Task<List<JsonElement>> EventsAsync(HttpClient client, string id) =>
        [.. (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs")).GetProperty("items").EnumerateArray()];

    public void Dispose()
    {
        _repo.Dispose();
        _authority.Dispose();
        _dir.Dispose();
    }
}
