using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Agents;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Agents;

/// <summary>
/// Acceptance 5, second half: the shipped registry entries for Codex, Claude Code and Aider, used as they ship, run a
/// fake CLI of the same name in the bubblewrap sandbox, and (issue 16) reach their vendor only through the egress proxy.
/// The fake sits in the repository (on the agent's PATH as /workspace/.fake-bin), prints what it was given and what it
/// sees, and edits a file.
/// </summary>
public sealed class CodingAgentCliTests : IDisposable
{
    private const string ApiKey = "cli-test-api";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly string Shipped = Path.Combine(AppContext.BaseDirectory, "agents", "coding-agents.yaml");

    /// <summary>
    /// Besides printing what it was given, the fake calls its vendor's API (a URL in the prompt instead, if it names one)
    /// the way the real CLIs do: through the proxy the worker puts in its environment, trusting the test CA the egress
    /// tests commit as .fake-bin/ca.pem (without it, it calls nothing). It never calls anything when a route leaves its
    /// namespace, so a broken sandbox cannot make it reach a real vendor.
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
        echo "openai key: ${OPENAI_API_KEY:-none} anthropic key: ${ANTHROPIC_API_KEY:-none} worker key: ${AGENT_WEBHOOK_SECRET:-none}"
        echo "edited by $(basename "$0")" >> NOTES.md
        [ -f .fake-bin/ca.pem ] || exit 0
        if [ "$(tail -n +2 /proc/net/route | wc -l)" -ne 0 ]; then echo "vendor call skipped: a route leaves the sandbox"; exit 3; fi
        case "$(basename "$0")" in
          codex) hosts="api.openai.com" ;;
          claude) hosts="api.anthropic.com" ;;
          *) hosts="api.openai.com api.anthropic.com openrouter.ai" ;;
        esac
        urls=$(printf '%s %s' "$stdin" "$prompt" | grep -o 'https://[^ ]*' | head -n 1)
        [ -n "$urls" ] || urls=$(for host in $hosts; do echo "https://$host/"; done)
        for url in $urls; do
          if reply=$(curl -fsS --max-time 20 --cacert .fake-bin/ca.pem "$url" 2>&1); then
            echo "vendor $url: $reply"
          else
            echo "vendor call failed: $url: $reply"
            exit 1
          fi
        done
        """;

    private readonly TempDirectory _dir = new("aw-cli");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["NOTES.md"] = "notes\n" });

    public CodingAgentCliTests()
    {
        var bin = Path.Combine(_repo.Path, ".fake-bin");
        Directory.CreateDirectory(bin);
        foreach (var name in new[] { "codex", "claude", "aider" })
        {
            var file = Path.Combine(bin, name);
            File.WriteAllText(file, FakeCli);
            File.SetUnixFileMode(file, (UnixFileMode)0b111_101_101);
        }
        _repo.Commit(new Dictionary<string, string>(), "fake coding-agent CLIs");
    }

    /// <summary>Starts a worker on the shipped registry with <paramref name="settings"/> on top of the test's own.</summary>
    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(IReadOnlyDictionary<string, string>? settings = null)
    {
        // The agent's PATH is fixed; naming PATH in `env` is how an operator passes the worker's (here: the fakes first).
        var agents = _dir.Combine("coding-agents.yaml");
        File.WriteAllText(agents, File.ReadAllText(Shipped).Replace("env: [", "env: [PATH, ", StringComparison.Ordinal));
        var port = WorkerProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = agents,
            ["OPENAI_API_KEY"] = "openai-test-key",
            ["ANTHROPIC_API_KEY"] = "anthropic-test-key",
            // Passed to the sandboxed agent through `env: [PATH]`; the worker itself finds nothing there on the host.
            ["PATH"] = $"/workspace/.fake-bin:{Environment.GetEnvironmentVariable("PATH")}",
        };
        foreach (var (name, value) in settings ?? new Dictionary<string, string>())
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

    [Theory]
    [InlineData("codex", "OPENAI_API_KEY")]
    [InlineData("claude-code", "ANTHROPIC_API_KEY")]
    [InlineData("aider", "OPENAI_API_KEY")]
    public async Task ShippedEntry_RunsTheCliNonInteractively_InTheSandbox(string agentId, string allowedKey)
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
            var keys = logs.Single(l => l.StartsWith("openai key: ", StringComparison.Ordinal));
            Assert.Contains(allowedKey == "OPENAI_API_KEY" ? "openai key: openai-test-key" : "anthropic key: anthropic-test-key", keys);
            Assert.Contains("worker key: none", keys);
            if (agentId == "claude-code")
                Assert.Contains("openai key: none", keys);
        }
    }

    /// <summary>
    /// Issue 16, acceptance 3: each shipped entry (network allowlist) reaches its vendor's API hosts through the proxy, and
    /// nothing else. The vendor names are pinned (EGRESS_RESOLVE) to a TLS test server on 127.0.0.x:443, the only address
    /// EGRESS_ALLOW_CIDRS admits; the "other host" is pinned there too, so the allow-list is the one thing that stops it and
    /// the server shows it never arrived. No name is looked up in DNS and nothing leaves the machine.
    /// </summary>
    [Theory]
    [InlineData("codex", "api.openai.com")]
    [InlineData("claude-code", "api.anthropic.com")]
    [InlineData("aider", "api.openai.com api.anthropic.com openrouter.ai")]
    public async Task ShippedEntry_ReachesItsVendorThroughTheProxy_AndNoOtherHost(string agentId, string vendorHosts)
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case): its vendor server listens on port 443");
        const string Elsewhere = "elsewhere.test";
        var vendors = vendorHosts.Split(' ');
        using var authority = new TestCertificateAuthority();
        await using var server = await TlsTestServer.StartAsync(authority, ["api.openai.com", "api.anthropic.com", "openrouter.ai", Elsewhere], port: 443, body: $"models for {agentId}");
        _repo.Commit(new Dictionary<string, string> { [".fake-bin/ca.pem"] = authority.Pem }, "the test CA");
        var (worker, client) = await ServeAsync(new Dictionary<string, string>
        {
            ["EGRESS_RESOLVE"] = string.Join(',', new[] { "api.openai.com", "api.anthropic.com", "openrouter.ai", Elsewhere }.Select(name => $"{name}:443:{server.Address}")),
            ["EGRESS_ALLOW_CIDRS"] = server.EndPoint,
        });
        await using (worker)
        using (client)
        {
            var (job, events) = await RunAsync(client, worker, $"cli-{agentId}-vendor", agentId, "Fix the failing test");

            Assert.True(job.GetProperty("state").GetString() == "succeeded", $"{agentId}: {job}\n{string.Join('\n', Messages(events))}\n{worker.Output}");
            var logs = Stdout(events);
            foreach (var vendor in vendors)
            {
                Assert.True(logs.Contains($"vendor https://{vendor}/: {server.Body}"), string.Join('\n', Messages(events)));
                var allowed = Assert.Single(Egress(events), e => e.GetProperty("host").GetString() == vendor);
                Assert.Equal(("allowed", 443, server.Address.ToString()), (allowed.GetProperty("decision").GetString(), allowed.GetProperty("port").GetInt32(), allowed.GetProperty("address").GetString()));
                Assert.True(allowed.GetProperty("bytesDown").GetInt64() > 0, allowed.ToString());
                Assert.Equal(1, server.Handshakes(vendor));
            }
            Assert.Equal(vendors.Length, Egress(events).Count);
            var summary = job.GetProperty("result").GetProperty("egress").EnumerateArray().ToList();
            Assert.Equal(vendors.Order(), summary.Select(h => h.GetProperty("host").GetString()!).Order());

            (job, events) = await RunAsync(client, worker, $"cli-{agentId}-elsewhere", agentId, $"Fix the failing test, then fetch https://{Elsewhere}/");

            Assert.NotEqual("succeeded", job.GetProperty("state").GetString());
            var refused = Assert.Single(Egress(events));
            Assert.Equal((Elsewhere, 443, "refused"), (refused.GetProperty("host").GetString(), refused.GetProperty("port").GetInt32(), refused.GetProperty("decision").GetString()));
            var reason = refused.GetProperty("reason").GetString();
            Assert.False(string.IsNullOrWhiteSpace(reason), refused.ToString());
            // The job log says why: the proxy's event with its reason, and the CLI's own failure (curl: CONNECT answered 403).
            Assert.Contains(Stdout(events), l => l.StartsWith($"vendor call failed: https://{Elsewhere}/: ", StringComparison.Ordinal) && l.Contains("403", StringComparison.Ordinal));
            Assert.Equal(0, server.Handshakes(Elsewhere));
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
