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
/// fake CLI of the same name in the bubblewrap sandbox. The fake sits in the repository (on the agent's PATH as
/// /workspace/.fake-bin), prints what it was given and what it sees, and edits a file.
/// </summary>
public sealed class CodingAgentCliTests : IDisposable
{
    private const string ApiKey = "cli-test-api";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly string Shipped = Path.Combine(AppContext.BaseDirectory, "agents", "coding-agents.yaml");

    private const string FakeCli = """
        #!/bin/sh
        for arg in "$@"; do echo "arg: $arg"; done
        previous=""
        for arg in "$@"; do [ "$previous" = "--message-file" ] && echo "prompt file: $(cat "$arg")"; previous="$arg"; done
        echo "stdin: $(cat)"
        echo "uid: $(id -u) host: $(hostname) cwd: $(pwd)"
        echo "openai key: ${OPENAI_API_KEY:-none} anthropic key: ${ANTHROPIC_API_KEY:-none} worker key: ${AGENT_WEBHOOK_SECRET:-none}"
        echo "edited by $(basename "$0")" >> NOTES.md
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

    [Theory]
    [InlineData("codex", "OPENAI_API_KEY")]
    [InlineData("claude-code", "ANTHROPIC_API_KEY")]
    [InlineData("aider", "OPENAI_API_KEY")]
    public async Task ShippedEntry_RunsTheCliNonInteractively_InTheSandbox(string agentId, string allowedKey)
    {
        var entry = AgentRegistry.Load(Shipped, ["agent-worker"]).Find(agentId)!;
        // The agent's PATH is fixed; naming PATH in `env` is how an operator passes the worker's (here: the fakes first).
        var agents = _dir.Combine("coding-agents.yaml");
        File.WriteAllText(agents, File.ReadAllText(Shipped).Replace("env: [", "env: [PATH, ", StringComparison.Ordinal));
        const string prompt = "Fix the failing test; don't ask";
        var port = WorkerProcess.FreePort();
        await using var worker = WorkerProcess.Start(new Dictionary<string, string>
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
        }, "serve");
        using var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);

        var job = new JsonObject { ["id"] = $"cli-{agentId}", ["agent"] = agentId, ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = 1, ["prompt"] = prompt };
        Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"))).StatusCode);
        await Eventually.UntilAsync(() => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/cli-{agentId}"), j => j.GetProperty("state").GetString() == "succeeded",
            Deadline, $"{agentId} succeeded\n{worker.Output}");
        var logs = (await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/cli-{agentId}/logs")).GetProperty("items").EnumerateArray()
            .Where(e => e.TryGetProperty("stream", out var stream) && stream.GetString() == "stdout").Select(e => e.GetProperty("message").GetString()!).ToList();

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

    public void Dispose()
    {
        _repo.Dispose();
        _dir.Dispose();
    }
}
