using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Tests.Sandbox;

namespace AgentWorker.Tests.Gateway;

/// <summary>
/// One real <c>agent-worker serve</c> (bubblewrap sandbox, root) with the shipped coding-agent registry and only the settings
/// an operator already has: the vendors' real keys, <c>LLM_BASE_URL</c> / <c>OPENROUTER_API_KEY</c> / <c>LLM_MODEL</c> for the
/// <c>llm</c> agent, and a price table. The vendor names resolve (EGRESS_RESOLVE) to a <see cref="FakeModelVendor"/> on a
/// loopback address of its own, port 443, whose certificate the worker trusts through SSL_CERT_FILE; nothing is looked up
/// in DNS and nothing leaves the machine. The job's repository carries fake <c>codex</c> and <c>claude</c> CLIs
/// (<see cref="FakeCli"/>) the shipped entries run.
/// </summary>
public sealed class GatewayWorkerFixture : IAsyncLifetime
{
    public const string LlmName = "llm.test";

    /// <summary>Where each vendor's gateway route is, inside the sandbox (the contract's fixed port).</summary>
    public const string GatewayUrl = "http://127.0.0.1:3127";

    /// <summary>USD per million tokens; <c>gpt-4o-2024-08-06</c> is priced as <c>gpt-4o</c> (longest prefix before a '-').</summary>
    public const string Prices = """{"gpt-4o": {"input": 2.5, "output": 10, "cachedInput": 1.25}, "claude-sonnet-4": {"input": 3, "output": 15, "cachedInput": 0.3}}""";

    private static readonly string[] VendorNames = ["api.openai.com", "api.anthropic.com", "openrouter.ai", LlmName];
    private static readonly string Shipped = Path.Combine(AppContext.BaseDirectory, "agents", "coding-agents.yaml");
    private static readonly string[] TerminalStates = ["succeeded", "failed", "dead", "cancelled", "timed_out"];
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Stands in for <c>codex</c> and <c>claude</c>: reads the prompt on standard input and calls its vendor as the real CLI
    /// does, at the base URL and with the key its variables hold (OpenAI chat completions or Responses for codex, Anthropic
    /// messages for claude). It prints the key it was given (also reversed, which no mask recognises), the base URL, and each
    /// call's status and answer. Words of the prompt steer it: <c>stream</c>, <c>responses</c>, <c>model=NAME</c>,
    /// <c>tries=N</c> (calls in a row), <c>key=KEY</c> (the first call sends KEY instead of its own), <c>hold</c> (then waits
    /// to be cancelled). It fails when its last call was not answered 200.
    /// </summary>
    public const string FakeCli = """
        #!/bin/sh
        prompt=$(cat)
        echo "prompt: $prompt"
        stream=false; api=chat; model=""; tries=1; first=""; hold=false
        for word in $prompt; do
          case "$word" in
            stream) stream=true ;;
            responses) api=responses ;;
            model=*) model=${word#model=} ;;
            tries=*) tries=${word#tries=} ;;
            key=*) first=${word#key=} ;;
            hold) hold=true ;;
          esac
        done
        if [ "$(basename "$0")" = claude ]; then
          own=$ANTHROPIC_API_KEY; base=$ANTHROPIC_BASE_URL; url="$base/v1/messages"
          body="{\"model\":\"${model:-claude-sonnet-4-20250514}\",\"max_tokens\":64,\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
        else
          own=$OPENAI_API_KEY; base=$OPENAI_BASE_URL
          options=""; [ $stream = true ] && options=',"stream_options":{"include_usage":true}'
          if [ $api = responses ]; then
            url="$base/responses"; body="{\"model\":\"${model:-gpt-4o}\",\"input\":\"hi\",\"stream\":$stream}"
          else
            url="$base/chat/completions"; body="{\"model\":\"${model:-gpt-4o}\",\"stream\":$stream$options,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
          fi
        fi
        echo "key: $own"
        echo "key reversed: $(printf %s "$own" | rev)"
        echo "base url: $base"
        i=0
        while [ $i -lt $tries ]; do
          i=$((i+1))
          key=${first:-$own}; first=""; : > /tmp/answer
          if [ "$(basename "$0")" = claude ]; then
            status=$(curl -sS --max-time 30 -o /tmp/answer -w '%{http_code}' -H "x-api-key: $key" -H "anthropic-version: 2023-06-01" -H "content-type: application/json" --data "$body" "$url") || status="curl failed"
          else
            status=$(curl -sS --max-time 30 -o /tmp/answer -w '%{http_code}' -H "Authorization: Bearer $key" -H "content-type: application/json" --data "$body" "$url") || status="curl failed"
          fi
          echo "status $i: $status"
          echo "answer $i: $(tr '\n' ' ' < /tmp/answer)"
        done
        echo "edited by $(basename "$0")" >> NOTES.md
        if [ $hold = true ]; then echo HOLDING; while :; do sleep 1; done; fi
        [ "$status" = 200 ]
        """;

    private readonly TempDirectory _dir = new("aw-gw");
    private readonly TestCertificateAuthority _authority = new();
    private TestRepository? _repo;
    private FakeModelVendor? _vendor;
    private WorkerProcess? _worker;
    private Dictionary<string, string> _environment = [];

    public string OpenAiKey { get; } = $"sk-real-openai-{Guid.NewGuid():N}";

    public string AnthropicKey { get; } = $"sk-ant-real-{Guid.NewGuid():N}";

    public string OpenRouterKey { get; } = $"sk-or-real-{Guid.NewGuid():N}";

    public IReadOnlyList<string> RealKeys => [OpenAiKey, AnthropicKey, OpenRouterKey];

    public FakeModelVendor Vendor => _vendor ?? throw new InvalidOperationException("fixture not initialized");

    internal WorkerProcess Worker => _worker ?? throw new InvalidOperationException("fixture not initialized");

    public HttpClient Client { get; private set; } = null!;

    public string ApiKey { get; } = $"gw-test-{Guid.NewGuid():N}";

    /// <summary>Gets every job's webhooks, whose payload carries the result and so its usage.</summary>
    public WebhookReceiver Webhooks { get; } = WebhookReceiver.Start(_ => 200);

    public async Task InitializeAsync()
    {
        Assert.True(Environment.IsPrivilegedProcess, "the gateway tests run the root worker (the CI case): the fake vendor listens on port 443, where the vendors' upstreams are");
        _vendor = await FakeModelVendor.StartAsync(_authority, VendorNames);
        _repo = TestRepository.Create(new Dictionary<string, string> { ["NOTES.md"] = "notes\n", ["app/handler.py"] = "def handle(request):\n    return eval(request.body)\n" });
        Agents.CodingAgentCliTests.InstallFakeClis(_repo, FakeCli);

        var agents = _dir.Combine("coding-agents.yaml");
        File.WriteAllText(agents, WithPath(File.ReadAllText(Shipped)));
        var port = WorkerProcess.FreePort();
        _environment = new Dictionary<string, string>
        {
            ["WORKER_API_KEY"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = agents,
            ["WORKERS"] = "2",
            ["RETRY_BASE_DELAY_SECONDS"] = "0",
            ["OPENAI_API_KEY"] = OpenAiKey,
            ["ANTHROPIC_API_KEY"] = AnthropicKey,
            ["OPENROUTER_API_KEY"] = OpenRouterKey,
            ["LLM_BASE_URL"] = $"https://{LlmName}/v1",
            ["LLM_MODEL"] = "gpt-4o",
            ["MODEL_PRICES"] = Prices,
            ["WEBHOOK_URL"] = Webhooks.Url.ToString(),
            ["WEBHOOK_SECRET"] = $"gw-webhook-{Guid.NewGuid():N}",
            ["EGRESS_RESOLVE"] = Vendor.Pins,
            ["EGRESS_ALLOW_CIDRS"] = Vendor.EndPoint,
            ["SSL_CERT_FILE"] = _authority.WritePem(_dir.Combine("ca.pem")),
            // Passed to the sandboxed CLIs through `env: [PATH]`; the worker itself finds nothing there on the host.
            ["PATH"] = $"/workspace/.fake-bin:{Environment.GetEnvironmentVariable("PATH")}",
        };
        _worker = WorkerProcess.Start(_environment, "serve");
        Client = WorkerProcess.Client(port, ApiKey);
        await _worker.WaitReadyAsync(Client);
    }

    /// <summary>
    /// The shipped registry with <c>PATH</c> in every entry's <c>env</c> (the agent's PATH is fixed; naming it is how an
    /// operator passes the worker's, here with the fakes first), whether an entry lists variables or none.
    /// </summary>
    public static string WithPath(string registry) => string.Concat(Regex.Split(registry, "(?m)^(?=  - id: )").Select(entry =>
        !entry.StartsWith("  - id: ", StringComparison.Ordinal) ? entry
        : Regex.IsMatch(entry, @"(?m)^    env: \[") ? Regex.Replace(Regex.Replace(entry, @"(?m)^    env: \[", "    env: [PATH, "), @"\[PATH, \s*\]", "[PATH]")
        : Regex.Replace(entry, "(?m)^(    command: .*)$", "$1\n    env: [PATH]")));

    public string RepoPath => _repo?.Path ?? throw new InvalidOperationException("fixture not initialized");

    /// <summary>Runs the CLI with the worker's settings (its store, registry and keys); returns its output, after checking it exited 0.</summary>
    public async Task<string> CliAsync(params string[] args)
    {
        var cli = WorkerProcess.Start(_environment, args);
        await using (cli)
        {
            Assert.True(await cli.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, $"agent-worker {string.Join(' ', args)}:\n{cli.Output}");
            return cli.Output;
        }
    }

    /// <summary>Enqueues a job of <paramref name="agent"/> on the fixture's repository (maxAttempts 1 unless <paramref name="extra"/> says); returns its id.</summary>
    public async Task<string> EnqueueAsync(string agent, string prompt, JsonObject? extra = null)
    {
        var id = $"{agent}-{Guid.NewGuid():N}"[..(agent.Length + 13)];
        var job = new JsonObject { ["id"] = id, ["agent"] = agent, ["repo"] = new JsonObject { ["url"] = RepoPath }, ["maxAttempts"] = 1, ["prompt"] = prompt };
        foreach (var (name, value) in extra ?? [])
            job[name] = value?.DeepClone();
        using var response = await Client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"enqueue {agent}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return id;
    }

    public async Task<AgentRun> RunAsync(string agent, string prompt, JsonObject? extra = null) => await WaitAsync(await EnqueueAsync(agent, prompt, extra));

    /// <summary>Waits for the job's final state; returns it with all its events.</summary>
    public async Task<AgentRun> WaitAsync(string id)
    {
        var final = await Eventually.UntilAsync(() => Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"), j => TerminalStates.Contains(j.GetProperty("state").GetString()),
            Deadline, $"job {id} ends\n{SandboxWorkerFixture.Tail(Worker.Output)}");
        return new AgentRun(id, final, await EventsAsync(id));
    }

    /// <summary>Every event of the job so far, all pages.</summary>
    public async Task<List<JsonElement>> EventsAsync(string id)
    {
        var events = new List<JsonElement>();
        while (true)
        {
            var after = events.Count == 0 ? 0 : events[^1].GetProperty("seq").GetInt64();
            var items = (await Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs?after={after}")).GetProperty("items").EnumerateArray().ToList();
            if (items.Count == 0)
                return events;
            events.AddRange(items);
        }
    }

    /// <summary>Fails if a real key is anywhere in <paramref name="text"/>, as is or reversed.</summary>
    public void AssertNoRealKey(string place, string text)
    {
        foreach (var key in RealKeys)
        {
            Assert.False(text.Contains(key, StringComparison.Ordinal), $"the real key {key} is in {place}");
            Assert.False(text.Contains(new string([.. key.Reverse()]), StringComparison.Ordinal), $"the real key {key}, reversed, is in {place}");
        }
    }

    /// <summary>Fails if a real key is in the job's record, its events, or the worker's log.</summary>
    public async Task AssertNoRealKeyAsync(AgentRun run)
    {
        AssertNoRealKey($"job {run.Id}", await Client.GetStringAsync($"/v1/jobs/{run.Id}"));
        AssertNoRealKey($"events of {run.Id}", JsonSerializer.Serialize(run.Events));
        AssertNoRealKey("the worker's log", Worker.Output);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (_worker is not null)
            await _worker.DisposeAsync();
        if (_vendor is not null)
            await _vendor.DisposeAsync();
        Webhooks.Dispose();
        _repo?.Dispose();
        _authority.Dispose();
        _dir.Dispose();
    }
}

/// <summary>What the gateway recorded for a run: the result's <c>usage</c> and the <c>model</c> events.</summary>
public static class GatewayRuns
{
    /// <summary>The result's <c>usage</c> block, when the worker recorded one.</summary>
    public static JsonElement? Usage(this AgentRun run) =>
        run.Job.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object && result.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            ? usage
            : null;

    /// <summary>The run's <c>model</c> events, each message parsed (vendor, model, status, tokens, costUsd, latencyMs, stream, refused).</summary>
    public static IReadOnlyList<JsonElement> ModelEvents(this AgentRun run) =>
    [
        .. run.Events.Where(e => e.GetProperty("kind").GetString() == "model").Select(e =>
        {
            var message = e.GetProperty("message");
            return message.ValueKind == JsonValueKind.String ? JsonDocument.Parse(message.GetString()!).RootElement.Clone() : message;
        }),
    ];

    /// <summary>The placeholder key the fake CLI printed (read reversed, in case the worker masks the plain one).</summary>
    public static string PrintedKey(this AgentRun run) => new([.. (run.Value("key reversed:") ?? "").Reverse()]);

    /// <summary>For assertion messages: the run, its usage and its model events.</summary>
    public static string Report(this AgentRun run) =>
        $"{run}\n  usage: {run.Usage()}\n  model events:\n    {string.Join("\n    ", run.ModelEvents())}";
}
