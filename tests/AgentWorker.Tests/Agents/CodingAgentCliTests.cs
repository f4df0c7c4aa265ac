using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AgentWorker.Core.Agents;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Tests.Gateway;

namespace AgentWorker.Tests.Agents;

/// <summary>
/// Acceptance 5, second half: the shipped registry entries for Codex, Claude Code and Aider, used as they ship, run a
/// fake CLI of the same name in the bubblewrap sandbox, and (issue 17) reach their vendor only through the model gateway,
/// holding a placeholder key; the egress proxy lets them reach no vendor host directly (issue 16). The fake sits in the
/// repository (on the agent's PATH as /workspace/.fake-bin), prints what it was given and what it sees, and edits a file.
/// </summary>
public sealed partial class CodingAgentCliTests : IDisposable
{
    private const string ApiKey = "cli-test-api";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly string Shipped = Path.Combine(AppContext.BaseDirectory, "agents", "coding-agents.yaml");

    /// <summary>The real keys, in the worker's environment only.</summary>
    private static readonly Dictionary<string, string> RealKeys = new()
    {
        ["OPENAI_API_KEY"] = "openai-test-key",
        ["ANTHROPIC_API_KEY"] = "anthropic-test-key",
        ["OPENROUTER_API_KEY"] = "openrouter-test-key",
    };

    /// <summary>
    /// Besides printing what it was given, the fake calls its vendors' APIs the way the real CLIs do, at the base URL and with
    /// the key the worker put in its variables (the gateway; aider's LiteLLM reads OPENAI_API_BASE and OPENROUTER_API_BASE), then tries the vendors' hosts (or a URL in the prompt, if it
    /// names one) straight through the egress proxy, trusting the test CA the tests commit as .fake-bin/ca.pem (without it,
    /// it calls nothing). It never calls anything when a route leaves its namespace, so a broken sandbox cannot make it
    /// reach a real vendor.
    /// </summary>
    private const string FakeCli = """
        #!/bin/sh
        for arg in "$@"; do echo "arg: $arg"; done
        previous=""
        prompt=""
        for arg in "$@"; do [ "$previous" = "--message-file" ] && prompt=$(cat "$arg") && echo "prompt file: $prompt"; previous="$arg"; done
        stdin=$(cat)
        echo "stdin: $stdin"
        echo "uid: $(id -u) host: $(hostname) cwd: $(pwd)"
        echo "OPENAI_API_KEY=${OPENAI_API_KEY:-none}"
        echo "ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY:-none}"
        echo "OPENROUTER_API_KEY=${OPENROUTER_API_KEY:-none}"
        echo "worker key: ${AGENT_WEBHOOK_SECRET:-none}"
        echo "edited by $(basename "$0")" >> NOTES.md
        [ -f .fake-bin/ca.pem ] || exit 0
        if [ "$(tail -n +2 /proc/net/route | wc -l)" -ne 0 ]; then echo "vendor call skipped: a route leaves the sandbox"; exit 3; fi
        call() {
          if reply=$(curl -fsS --max-time 20 -H "$2" -H "content-type: application/json" --data '{"model":"gpt-4o","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' "$1" 2>&1); then
            echo "gateway $1: ok"
          else
            echo "gateway call failed: $1: $reply"
            exit 1
          fi
        }
        openai=${OPENAI_BASE_URL:-$OPENAI_API_BASE}; openrouter=${OPENROUTER_BASE_URL:-$OPENROUTER_API_BASE}
        if [ -n "$openai" ]; then call "$openai/chat/completions" "Authorization: Bearer $OPENAI_API_KEY"; fi
        if [ -n "$ANTHROPIC_BASE_URL" ]; then call "$ANTHROPIC_BASE_URL/v1/messages" "x-api-key: $ANTHROPIC_API_KEY"; fi
        if [ -n "$openrouter" ]; then call "$openrouter/chat/completions" "Authorization: Bearer $OPENROUTER_API_KEY"; fi
        urls=$(printf '%s %s' "$stdin" "$prompt" | grep -o 'https://[^ ]*' | head -n 1)
        [ -n "$urls" ] || urls="https://api.openai.com/ https://api.anthropic.com/ https://openrouter.ai/"
        for url in $urls; do
          if reply=$(curl -fsS --max-time 20 --cacert .fake-bin/ca.pem "$url" 2>&1); then
            echo "direct $url: reached"
          else
            echo "direct call failed: $url: $reply"
          fi
        done
        """;

    [GeneratedRegex("^awgw-[0-9a-f]{64}$")]
    private static partial Regex Placeholder();

    private readonly TempDirectory _dir = new("aw-cli");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["NOTES.md"] = "notes\n" });

    public CodingAgentCliTests() => InstallFakeClis(_repo, FakeCli);

    /// <summary>Commits <paramref name="script"/> as <c>.fake-bin/codex</c>, <c>claude</c> and <c>aider</c> into <paramref name="repo"/>, for entries whose PATH leads there.</summary>
    internal static void InstallFakeClis(TestRepository repo, string script)
    {
        var bin = Path.Combine(repo.Path, ".fake-bin");
        Directory.CreateDirectory(bin);
        foreach (var name in new[] { "codex", "claude", "aider" })
        {
            var file = Path.Combine(bin, name);
            File.WriteAllText(file, script);
            File.SetUnixFileMode(file, (UnixFileMode)0b111_101_101);
        }
        repo.Commit(new Dictionary<string, string>(), "fake coding-agent CLIs");
    }

    /// <summary>Starts a worker on the shipped registry with <paramref name="settings"/> on top of the test's own.</summary>
    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(IReadOnlyDictionary<string, string>? settings = null)
    {
        // The agent's PATH is fixed; naming PATH in `env` is how an operator passes the worker's (here: the fakes first).
        var agents = _dir.Combine("coding-agents.yaml");
        File.WriteAllText(agents, GatewayWorkerFixture.WithPath(File.ReadAllText(Shipped)));
        var port = WorkerProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = agents,
            // Passed to the sandboxed agent through `env: [PATH]`; the worker itself finds nothing there on the host.
            ["PATH"] = $"/workspace/.fake-bin:{Environment.GetEnvironmentVariable("PATH")}",
        };
        foreach (var (name, value) in RealKeys.Concat(settings ?? new Dictionary<string, string>()))
            environment[name] = value;
        var worker = WorkerProcess.Start(environment, "serve");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    /// <summary>Runs one job to a final state; returns the job and its events.</summary>
    private async Task<(JsonElement Job, List<JsonElement> Events)> RunAsync(HttpClient client, WorkerProcess worker, string id, string agentId, string prompt)
    {
        var job = new JsonObject { ["id"] = id, ["agent"] = agentId, ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = 1, ["prompt"] = prompt };
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"))).StatusCode);
        var final = await Eventually.UntilAsync(() => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"), j => j.GetProperty("state").GetString() is "succeeded" or "failed" or "dead" or "timed_out" or "cancelled",
            Deadline, $"{id} ends\n{worker.Output}");
        var events = (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs")).GetProperty("items").EnumerateArray().ToList();
        return (final, events);
    }

    /// <summary>
    /// Each entry runs its CLI with exactly the shipped argv and the prompt off the command line, as the sandbox user, and
    /// (issue 17) holds a placeholder for each vendor it may call through the gateway, never the real key; the keys of
    /// vendors it does not use, and the worker's own, it does not get at all.
    /// </summary>
    [Theory]
    [InlineData("codex", "OPENAI_API_KEY")]
    [InlineData("claude-code", "ANTHROPIC_API_KEY")]
    [InlineData("aider", "OPENAI_API_KEY ANTHROPIC_API_KEY OPENROUTER_API_KEY")]
    public async Task ShippedEntry_RunsTheCliNonInteractively_InTheSandbox(string agentId, string keyVariables)
    {
        var entry = AgentRegistry.Load(Shipped, ["agent-worker"]).Find(agentId)!;
        const string prompt = "Fix the failing test; don't ask";
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            var (job, events) = await RunAsync(client, worker, $"cli-{agentId}", agentId, prompt);

            Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{agentId}: {job}\n{worker.Output}");
            var logs = Stdout(events);
            // Exactly the shipped argv, and the prompt on standard input or in the file the argv names; never as an argument.
            Assert.Equal(entry.Expand("/workspace", prompt, "/home/agent/.agent-worker-prompt").Skip(1).Select(a => $"arg: {a}"), logs.Where(l => l.StartsWith("arg: ", StringComparison.Ordinal)));
            Assert.DoesNotContain($"arg: {prompt}", logs);
            Assert.Contains(entry.PromptOnStdin ? $"stdin: {prompt}" : $"prompt file: {prompt}", logs);
            Assert.Contains("uid: 65534 host: sandbox cwd: /workspace", logs);
            foreach (var (variable, realKey) in RealKeys)
            {
                var value = logs.Single(l => l.StartsWith($"{variable}=", StringComparison.Ordinal))[(variable.Length + 1)..];
                if (keyVariables.Split(' ').Contains(variable))
                    Assert.Matches(Placeholder(), value);
                else
                    Assert.Equal("none", value);
                Assert.NotEqual(realKey, value);
            }
            Assert.Contains("worker key: none", logs);
            Assert.DoesNotContain(RealKeys.Values, key => JsonSerializer.Serialize(events).Contains(key, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// Issue 17 (with issue 16's proxy): each shipped entry reaches its vendors' APIs through the gateway, which hands the
    /// vendor the real key, and no vendor host directly: its allow-list names none, so the proxy refuses them as it refuses
    /// any other host. The vendor names, and the "other host", are pinned (EGRESS_RESOLVE) to a fake vendor on
    /// 127.0.0.x:443, the only address EGRESS_ALLOW_CIDRS admits, so the allow-list is the one thing that stops a direct
    /// call, and the vendor shows only the gateway's requests arrived. No name is looked up in DNS and nothing leaves the machine.
    /// </summary>
    [Theory]
    [InlineData("codex", "openai")]
    [InlineData("claude-code", "anthropic")]
    [InlineData("aider", "openai anthropic openrouter")]
    public async Task ShippedEntry_ReachesItsVendorThroughTheGateway_AndNoHostDirectly(string agentId, string gateways)
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case): its vendor server listens on port 443");
        const string Elsewhere = "elsewhere.test";
        string[] direct = ["api.openai.com", "api.anthropic.com", "openrouter.ai"];
        var entry = AgentRegistry.Load(Shipped, ["agent-worker"]).Find(agentId)!;
        Assert.DoesNotContain(entry.AllowHosts, host => direct.Contains(host.Host));
        using var authority = new TestCertificateAuthority();
        await using var vendor = await FakeModelVendor.StartAsync(authority, [.. direct, Elsewhere]);
        _repo.Commit(new Dictionary<string, string> { [".fake-bin/ca.pem"] = authority.Pem }, "the test CA");
        var (worker, client) = await ServeAsync(new Dictionary<string, string>
        {
            ["EGRESS_RESOLVE"] = vendor.Pins,
            ["EGRESS_ALLOW_CIDRS"] = vendor.EndPoint,
            ["SSL_CERT_FILE"] = authority.WritePem(_dir.Combine("ca.pem")),
        });
        await using (worker)
        using (client)
        {
            var (job, events) = await RunAsync(client, worker, $"cli-{agentId}-vendor", agentId, "Fix the failing test");
            var (_, elsewhere) = await RunAsync(client, worker, $"cli-{agentId}-elsewhere", agentId, $"Fix the failing test, then fetch https://{Elsewhere}/");

            Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{agentId}: {job}\n{string.Join('\n', Messages(events))}\n{worker.Output}");
            var logs = Stdout(events);
            var paths = new Dictionary<string, (string Path, string Key)>
            {
                ["openai"] = ("/v1/chat/completions", RealKeys["OPENAI_API_KEY"]),
                ["anthropic"] = ("/v1/messages", RealKeys["ANTHROPIC_API_KEY"]),
                ["openrouter"] = ("/api/v1/chat/completions", RealKeys["OPENROUTER_API_KEY"]),
            };
            foreach (var gateway in gateways.Split(' '))
                Assert.Contains(logs, l => l.StartsWith($"gateway http://127.0.0.1:3127/{gateway}/", StringComparison.Ordinal) && l.EndsWith(": ok", StringComparison.Ordinal));
            // Per job, one request per vendor, each with its real key: the gateway's. Nothing the agent sent itself arrived.
            Assert.Equal(
                gateways.Split(' ').Select(g => paths[g]).Concat(gateways.Split(' ').Select(g => paths[g])).Order(),
                vendor.Requests.Select(r => (r.Path, r.Key!)).Order());
            foreach (var (host, run) in direct.Select(h => (h, logs)).Append((Elsewhere, Stdout(elsewhere))))
                Assert.Contains(run, l => l.StartsWith($"direct call failed: https://{host}/: ", StringComparison.Ordinal) && l.Contains("403", StringComparison.Ordinal));
            Assert.DoesNotContain(logs.Concat(Stdout(elsewhere)), l => l.StartsWith("direct ", StringComparison.Ordinal) && l.EndsWith(": reached", StringComparison.Ordinal));
            foreach (var (host, run) in direct.Select(h => (h, events)).Append((Elsewhere, elsewhere)))
            {
                var refused = Assert.Single(Egress(run), e => e.GetProperty("host").GetString() == host && e.GetProperty("decision").GetString() == "refused");
                Assert.Equal(443, refused.GetProperty("port").GetInt32());
                Assert.False(string.IsNullOrWhiteSpace(refused.GetProperty("reason").GetString()), refused.ToString());
            }
        }
    }

    private static List<string> Stdout(List<JsonElement> events) =>
        [.. events.Where(e => e.TryGetProperty("stream", out var stream) && stream.GetString() == "stdout").Select(e => e.GetProperty("message").GetString()!)];

    private static List<string> Messages(List<JsonElement> events) => [.. events.Select(e => e.GetProperty("message").GetString() ?? "")];

    /// <summary>The <c>egress</c> events, each message parsed (JSON: host, port, address, decision, reason, protocol, bytesUp, bytesDown).</summary>
    private static List<JsonElement> Egress(List<JsonElement> events) =>
        [.. events.Where(e => e.GetProperty("kind").GetString() == "egress").Select(e => JsonDocument.Parse(e.GetProperty("message").GetString()!).RootElement.Clone())];

    public void Dispose()
    {
        _repo.Dispose();
        _dir.Dispose();
    }
}
