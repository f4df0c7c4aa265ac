using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// A worker attacked through what it takes in and shows: credentials in job URLs, job ids that cannot be addressed,
/// agent output aimed at the operator's terminal, a hostile Host header, a worker PATH with shims first, and prompts
/// too long for an argument. Its agents need commands of their own (<c>{prompt_file}</c>, <c>stdin: prompt</c>), so
/// the fixture writes its own registry file.
/// </summary>
public sealed class IntakeAttackFixture : SandboxWorkerFixture
{
    public const string PublicUrl = "https://worker.example:8443";
    public const string TerminalAttack = "A\u001b[31mB\u0007C\rD\0E";

    public string Token => $"ghp_{Nonce}intake";
    public string McpPassword => $"mcppw{Nonce}";

    /// <summary>A directory first on the worker's PATH; agents must not get it.</summary>
    public string Shims => Dir.Combine("shims");

    private string RegistryFile => Dir.Combine("intake-agents.yaml");

    protected override IEnumerable<HostileAgent> Agents => [];

    protected override bool WarmUp => true;

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["AGENTS_FILE"] = RegistryFile,
        ["PATH"] = $"{Shims}:{Environment.GetEnvironmentVariable("PATH")}",
        ["PUBLIC_URL"] = PublicUrl,
    };

    protected override Task PrepareAsync()
    {
        Directory.CreateDirectory(Shims);
        const string Digest = """cat "$1" > /tmp/prompt; echo "BYTES $(wc -c < /tmp/prompt) SHA $(sha256sum < /tmp/prompt | cut -c1-64)"; echo DONE""";
        var agents = new JsonArray(
            Agent("terminal", ["bash", "-c", """
                printf 'A\033[31mB\aC\rD\0E\n'
                printf '{"type":"finding","severity":"high","rule":"aws-key","file":"k","line":1,"message":"key AKIA\342\200\246 leaked"}\n'
                echo DONE
                """]),
            Agent("path", ["bash", "-c", """echo "PATH $PATH"; echo DONE"""]),
            Agent("mcp", ["bash", "-c", """echo "MCP $MCP_CONNECTION_URL"; [[ $MCP_CONNECTION_URL == http://mcpuser:mcppw*@127.0.0.1:9/mcp ]] && echo "MCP has its password"; echo DONE"""]),
            Agent("prompt-file", ["bash", "-c", Digest, "agent", "{prompt_file}"]),
            // "-": cat reads its fd 0; /dev/stdin would reopen the worker's pipe, which the sandbox user may not open.
            Agent("prompt-stdin", ["bash", "-c", Digest, "agent", "-"], stdin: true),
            Agent("prompt-arg", ["bash", "-c", "echo DONE", "agent", "{prompt}"]),
            Agent(WarmUpAgentId, ["bash", "-c", "echo DONE"]));
        var options = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(RegistryFile, new JsonObject { ["agents"] = agents }.ToJsonString(options));
        return Task.CompletedTask;
    }

    private static JsonObject Agent(string id, string[] command, bool stdin = false)
    {
        var entry = new JsonObject { ["id"] = id, ["command"] = new JsonArray([.. command.Select(a => JsonValue.Create(a))]) };
        if (stdin)
            entry["stdin"] = "prompt";
        return entry;
    }

    /// <summary>Runs the agent-worker CLI on this worker's data directory; stdout as bytes, as a terminal would get them.</summary>
    public async Task<(int Exit, byte[] Stdout, string Stderr)> CliAsync(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "agent-worker"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        // The test script exports Redis and PostgreSQL URLs for other suites; this worker's queue is the SQLite one.
        start.Environment["AGENT_WORKER_BACKEND"] = "sqlite";
        start.Environment["AGENT_WORKER_DATA"] = DataDir;
        start.Environment["WORK_DIR"] = WorkDir;
        start.Environment["AGENTS_FILE"] = RegistryFile;
        using var process = Process.Start(start)!;
        using var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(deadline.Token);
        await copy;
        return (process.ExitCode, stdout.ToArray(), await stderr);
    }
}

[Collection(QuietMachine.Name)]
public sealed class IntakeAttackTests(IntakeAttackFixture worker) : IClassFixture<IntakeAttackFixture>
{
    private async Task<(HttpStatusCode Status, JsonElement Body, string ContentType)> PostAsync(JsonObject job)
    {
        using var response = await worker.Client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>(), response.Content.Headers.ContentType?.MediaType ?? "");
    }

    [Theory]
    [InlineData("native", "repo.url")]
    [InlineData("queue", "repoUrl")]
    [InlineData("reliable", "repo_url")]
    public async Task TokenAsUserInRepoUrl_IsRefusedNamingFieldAndSetting_AndStoredNowhere(string shape, string field)
    {
        var id = $"token-{shape}";
        var url = $"https://{worker.Token}@127.0.0.1:1/org/app.git";
        var job = shape switch
        {
            "native" => new JsonObject { ["id"] = id, ["agent"] = "path", ["repo"] = new JsonObject { ["url"] = url } },
            "queue" => new JsonObject { ["id"] = id, ["agentId"] = "path", ["repoUrl"] = url },
            _ => new JsonObject { ["id"] = id, ["agent"] = "path", ["repo_url"] = url, ["prompt"] = "p" },
        };

        using var health = worker.WatchHealth();
        var (status, body, contentType) = await PostAsync(job);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("application/problem+json", contentType);
        var error = body.GetProperty("errors").GetProperty(field)[0].GetString()!;
        Assert.Contains("GIT_TOKEN", error, StringComparison.Ordinal);
        Assert.DoesNotContain(worker.Token, body.ToString(), StringComparison.Ordinal);
        using var get = await worker.Client.GetAsync($"/v1/jobs/{id}");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        var search = await worker.Client.GetFromJsonAsync<JsonElement>("/v1/jobs?repo=ghp_");
        Assert.Equal(0, search.GetProperty("total").GetInt32());
        AssertNotInDataDir(worker.Token);
        health.Stop().AssertFast($"a {shape} job with a token in its URL was refused");
    }

    [Fact]
    public async Task TokenAsUserInRepoUrl_CliEnqueue_OneLineNamingTheFlag_ExitTwo()
    {
        var (exit, stdout, stderr) = await worker.CliAsync("enqueue", "--job-id", "token-cli", "--agent", "path", "--repo-url", $"https://{worker.Token}@127.0.0.1:1/x.git");

        var output = Encoding.UTF8.GetString(stdout) + stderr;
        Assert.Equal(2, exit);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("agent-worker: invalid option --repo-url: must not embed credentials", output, StringComparison.Ordinal);
        Assert.Contains("GIT_TOKEN", output, StringComparison.Ordinal);
        AssertNotInDataDir(worker.Token);
    }

    [Fact]
    public async Task McpUrlWithPassword_ReachesTheAgent_ButJobReceiptAndLogsShowItRedacted()
    {
        var run = await worker.RunAsync("mcp", mcpUrl: $"http://mcpuser:{worker.McpPassword}@127.0.0.1:9/mcp");

        run.AssertFinished();
        Assert.True(run.Printed("MCP has its password"), run.ToString());
        Assert.Equal("http://***@127.0.0.1:9/mcp", run.Job.GetProperty("mcpUrl").GetString());
        Assert.Contains("MCP http://***@127.0.0.1:9/mcp", run.Lines);
        var receipt = await worker.Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{run.Id}/receipt");
        Assert.Equal("http://***@127.0.0.1:9/mcp", receipt.GetProperty("sandbox").GetProperty("mcpUrl").GetString());
        var (_, shown, _) = await worker.CliAsync("jobs", "show", run.Id);
        Assert.Contains("http://***@127.0.0.1:9/mcp", Encoding.UTF8.GetString(shown), StringComparison.Ordinal);
        foreach (var text in new[] { run.Job.ToString(), string.Join('\n', run.Lines), receipt.ToString(), Encoding.UTF8.GetString(shown) })
            Assert.DoesNotContain(worker.McpPassword, text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("...")]
    public async Task DotIds_AreRefusedNamingTheField(string id)
    {
        var (status, body, _) = await PostAsync(new JsonObject { ["id"] = id, ["agent"] = "path", ["repo"] = new JsonObject { ["url"] = worker.RepoPath } });

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("starting with a letter or digit", body.GetProperty("errors").GetProperty("id")[0].GetString(), StringComparison.Ordinal);
        var (exit, stdout, stderr) = await worker.CliAsync("enqueue", "--job-id", id, "--agent", "path", "--repo-url", worker.RepoPath);
        Assert.Equal(2, exit);
        Assert.StartsWith("agent-worker: invalid option --job-id: must be 1-128 characters", Encoding.UTF8.GetString(stdout) + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AgentTerminalControls_JobsLogsShowsThemEscaped_RawGivesTheBytes()
    {
        var run = await worker.RunAsync("terminal");
        run.AssertFinished();

        var (exit, escaped, _) = await worker.CliAsync("jobs", "logs", run.Id);
        var (rawExit, raw, _) = await worker.CliAsync("jobs", "logs", run.Id, "--raw");
        var (_, shown, _) = await worker.CliAsync("jobs", "show", run.Id);

        Assert.Equal((0, 0), (exit, rawExit));
        var text = Encoding.UTF8.GetString(escaped);
        Assert.Contains(@"stdout: A\x1b[31mB\x07C\rD\x00E", text, StringComparison.Ordinal);
        Assert.DoesNotContain(escaped, b => b is 0x1b or 0x07 or 0x0d or 0x00);
        Assert.DoesNotContain(shown, b => b is 0x1b or 0x07 or 0x0d or 0x00);
        // Printable non-ASCII text is printed as it is, not as a JSON escape.
        Assert.Contains("key AKIA… leaked", text, StringComparison.Ordinal);
        Assert.DoesNotContain(@"\u2026", text, StringComparison.Ordinal);
        Assert.Contains($"stdout: {IntakeAttackFixture.TerminalAttack}\n", Encoding.UTF8.GetString(raw), StringComparison.Ordinal);
        run.AssertHealthStayedFast();
    }

    [Fact]
    public async Task WorkerPathWithShimsFirst_AgentGetsTheFixedPath()
    {
        var run = await worker.RunAsync("path");

        run.AssertFinished();
        Assert.Equal("/usr/local/bin:/usr/bin:/bin", run.Value("PATH"));
    }

    [Theory]
    [InlineData("prompt-file")]
    [InlineData("prompt-stdin")]
    public async Task PromptOf200KiB_ReachesTheAgentWhole(string agent)
    {
        var prompt = string.Concat(Enumerable.Range(0, 200 * 1024 / 16).Select(i => $"line {i:D10}\n"));

        var run = await worker.RunAsync(agent, prompt);

        run.AssertFinished();
        Assert.Equal(200 * 1024, Encoding.UTF8.GetByteCount(prompt));
        Assert.Equal($"{200 * 1024} SHA {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(prompt)))}", run.Value("BYTES"));
    }

    [Fact]
    public async Task PromptOf200KiB_AsArgument_FailsWithAClearError()
    {
        var run = await worker.RunAsync("prompt-arg", new string('p', 200 * 1024));

        Assert.Equal("failed", run.State);
        var error = run.Job.GetProperty("error").GetString()!;
        Assert.Contains("{prompt_file}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Argument list too long", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenApiServers_ComeFromPublicUrl_NotTheHostHeader()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/openapi/v1.json");
        request.Headers.Host = "evil.example:666";

        using var response = await worker.Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("evil.example", body, StringComparison.Ordinal);
        var servers = JsonDocument.Parse(body).RootElement.GetProperty("servers");
        Assert.Equal([IntakeAttackFixture.PublicUrl], servers.EnumerateArray().Select(s => s.GetProperty("url").GetString()));
    }

    /// <summary>Every byte of every file under the data directory: the SQLite database, its WAL and anything else kept.</summary>
    private void AssertNotInDataDir(string secret)
    {
        var needle = Encoding.UTF8.GetBytes(secret);
        var files = Directory.EnumerateFiles(worker.DataDir, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(files, f => f.EndsWith("queue.db-wal", StringComparison.Ordinal));
        foreach (var file in files)
        {
            byte[] bytes;
            using (var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                bytes = copy.ToArray();
            }
            Assert.True(bytes.AsSpan().IndexOf(needle) < 0, $"{file} holds {secret}");
        }
    }
}
