using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Sinks;
using AgentWorker.Testing;
using Npgsql;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// Issue 6 acceptance, against real worker processes, a bare git repository as the remote, a real HTTP receiver on
/// loopback and the PostgreSQL server the test script started: webhooks, apply mode, receipts, the results table.
/// </summary>
public sealed class IntegrationsEndToEndTests : IDisposable
{
    private const string ApiKey = "dev_secret";
    private const string WebhookSecret = "webhook-secret-0123456789";
    private const string Prompt = "Make a change and report it";
    private static readonly TimeSpan JobDeadline = TimeSpan.FromSeconds(90);

    private readonly TempDirectory _dir = new("aw-integ");
    private readonly TestRepository _source = TestRepository.Create(new Dictionary<string, string> { ["a.txt"] = "original\n", ["b.txt"] = "kept\n" });
    private readonly BareRepository _remote;

    public IntegrationsEndToEndTests() => _remote = BareRepository.From(_source);

    /// <summary>`editor` changes the checkout, writes a report and reports it as an artifact and a finding; it runs sandboxed.</summary>
    private string AgentsFile()
    {
        var file = _dir.Combine("agents.yaml");
        File.WriteAllText(file, """
            agents:
              - id: editor
                command: ["sh", "-c", "printf 'changed\\n' > a.txt; echo added > added.txt; mkdir -p out; echo report > out/report.txt; echo '{\"type\":\"artifact\",\"path\":\"out/report.txt\"}'; echo '{\"type\":\"finding\",\"severity\":\"medium\",\"rule\":\"r\",\"message\":\"m\"}'", "{prompt}"]
            """);
        return file;
    }

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(Dictionary<string, string>? extra = null)
    {
        var port = WorkerProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = AgentsFile(),
            ["RATE_LIMIT_PER_MINUTE"] = "0",
            ["SINK_RETRY_BASE_DELAY_SECONDS"] = "0.05",
        };
        foreach (var (name, value) in extra ?? [])
            environment[name] = value;
        var worker = WorkerProcess.Start(environment, "serve");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    private async Task<JsonElement> RunJobAsync(HttpClient client, WorkerProcess worker, string id, JsonObject? extra = null, string state = "succeeded")
    {
        var body = new JsonObject { ["id"] = id, ["agent"] = "editor", ["repo"] = new JsonObject { ["url"] = _remote.Path, ["branch"] = "main" }, ["prompt"] = Prompt, ["maxAttempts"] = 1 };
        foreach (var (name, value) in extra ?? [])
            body[name] = value?.DeepClone();
        var response = await client.PostAsync("/v1/jobs", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return await Eventually.UntilAsync(
            () => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"),
            job => job.GetProperty("state").GetString() == state,
            JobDeadline,
            $"job {id} {state}\n{worker.Output}");
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    [Fact]
    public async Task Webhooks_ReceiverFailingThreeTimes_GetsEachSignedStateChangeOnce()
    {
        using var receiver = WebhookReceiver.Start(n => n <= 3 ? 500 : 200);
        var (worker, client) = await ServeAsync(new() { ["WEBHOOK_URL"] = receiver.Url.ToString(), ["WEBHOOK_SECRET"] = WebhookSecret });
        await using (worker)
        using (client)
        {
            await RunJobAsync(client, worker, "hook-1");
            var accepted = await Eventually.UntilAsync(
                () => Task.FromResult(receiver.Requests.Where(r => r.Status == 200).ToList()),
                list => list.Count >= 3,
                JobDeadline,
                "three state changes accepted");

            var secret = Encoding.UTF8.GetBytes(WebhookSecret);
            Assert.All(receiver.Requests, r => Assert.True(WebhookSink.Verify(secret, r.Body, r.Header(WebhookSink.SignatureHeader)), $"request {r.Number} signature"));
            Assert.Equal(["job.queued", "job.running", "job.succeeded"], accepted.Select(r => r.Header(WebhookSink.EventHeader)));
            // The three refused tries were the first event, retried with the same delivery id until it got through once.
            Assert.Equal([500, 500, 500, 200], receiver.Requests.Take(4).Select(r => r.Status));
            Assert.Single(receiver.Requests.Take(4).Select(r => r.Header(WebhookSink.DeliveryHeader)).Distinct());
            Assert.Equal(3, accepted.Select(r => r.Header(WebhookSink.DeliveryHeader)).Distinct().Count());
            using var final = JsonDocument.Parse(accepted[^1].Body);
            Assert.Equal(2, final.RootElement.GetProperty("job").GetProperty("result").GetProperty("artifacts").GetArrayLength());

            var deliveries = await Eventually.UntilAsync(
                () => client.GetFromJsonAsync<JsonElement>("/v1/jobs/hook-1/deliveries"),
                d => d.GetProperty("items").EnumerateArray().Count(i => i.GetProperty("outcome").GetString() == "delivered") == 3,
                JobDeadline,
                "delivery log complete");
            var log = deliveries.GetProperty("items").EnumerateArray().Select(i => (i.GetProperty("event").GetString(), i.GetProperty("attempt").GetInt32(), i.GetProperty("outcome").GetString())).ToList();
            Assert.Equal(
                [("job.queued", 1, "retrying"), ("job.queued", 2, "retrying"), ("job.queued", 3, "retrying"), ("job.queued", 4, "delivered"),
                 ("job.running", 1, "delivered"), ("job.succeeded", 1, "delivered")],
                log);
            Assert.All(deliveries.GetProperty("items").EnumerateArray(), i => Assert.Equal($"webhook http://127.0.0.1:{receiver.Url.Port}", i.GetProperty("sink").GetString()));
        }
    }

    [Fact]
    public async Task Webhook_ReceiverRefusingForGood_NeverCostsTheJobItsResult()
    {
        using var receiver = WebhookReceiver.Start(_ => 400);
        var (worker, client) = await ServeAsync(new() { ["WEBHOOK_URL"] = receiver.Url.ToString(), ["WEBHOOK_SECRET"] = WebhookSecret });
        await using (worker)
        using (client)
        {
            var job = await RunJobAsync(client, worker, "hook-2");
            var deliveries = await Eventually.UntilAsync(
                () => client.GetFromJsonAsync<JsonElement>("/v1/jobs/hook-2/deliveries"),
                d => d.GetProperty("items").EnumerateArray().Count(i => i.GetProperty("outcome").GetString() == "failed") == 3,
                JobDeadline,
                "three deliveries given up");

            Assert.Equal(96, job.GetProperty("result").GetProperty("healthScore").GetInt32());
            Assert.All(deliveries.GetProperty("items").EnumerateArray(), i => Assert.Equal("HTTP 400 Bad Request", i.GetProperty("error").GetString()));
            Assert.Equal(3, receiver.Requests.Count);
        }
    }

    [Fact]
    public async Task ApplyMode_PushesOneCommitToTheBareRemote()
    {
        var before = _remote.Head("main")!;
        var (worker, client) = await ServeAsync(new() { ["GIT_AUTHOR_NAME"] = "Review Bot", ["GIT_AUTHOR_EMAIL"] = "bot@example.invalid" });
        await using (worker)
        using (client)
        {
            var job = await RunJobAsync(client, worker, "apply-1", new JsonObject { ["mode"] = "apply", ["commitMessage"] = "Apply the agent's change" });

            var changes = job.GetProperty("result").GetProperty("changes");
            var pushed = changes.GetProperty("commitAfter").GetString()!;
            Assert.Equal(pushed, _remote.Head("main"));
            Assert.Equal((before, "main"), (changes.GetProperty("commitBefore").GetString(), changes.GetProperty("pushedTo").GetString()));
            Assert.Equal($"Review Bot <bot@example.invalid>|{before}|Apply the agent's change", _remote.Log("main", "%an <%ae>|%P|%s"));
            Assert.Equal("changed\n", _remote.Show("main", "a.txt"));
            Assert.Equal("added\n", _remote.Show("main", "added.txt"));
            var stat = changes.GetProperty("diffstat");
            // a.txt edited, added.txt and out/report.txt new.
            Assert.Equal((3, 3, 1), (stat.GetProperty("filesChanged").GetInt32(), stat.GetProperty("insertions").GetInt32(), stat.GetProperty("deletions").GetInt32()));
        }
    }

    [Fact]
    public async Task DryRun_NeverPushes_ButStillRecordsTheDiff()
    {
        var refs = _remote.Refs();
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            var job = await RunJobAsync(client, worker, "dry-1", new JsonObject { ["mode"] = "dry_run" });

            Assert.Equal(refs, _remote.Refs());
            var changes = job.GetProperty("result").GetProperty("changes");
            Assert.False(changes.TryGetProperty("commitAfter", out _));
            Assert.Equal(3, changes.GetProperty("diffstat").GetProperty("filesChanged").GetInt32());
            var diff = await client.GetStringAsync("/v1/jobs/dry-1/artifacts/diff.patch");
            Assert.Contains("+changed", diff, StringComparison.Ordinal);
            Assert.Contains("+added", diff, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Receipt_EveryHashMatchesTheStoredDiffAndArtifacts()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await RunJobAsync(client, worker, "receipt-1");
            var receipt = await client.GetFromJsonAsync<JsonElement>("/v1/jobs/receipt-1/receipt");

            Assert.Equal((_remote.Path, _remote.Head("main")), (receipt.GetProperty("repository").GetProperty("url").GetString(), receipt.GetProperty("commitBefore").GetString()));
            Assert.Equal(Sha256(Encoding.UTF8.GetBytes(Prompt)), receipt.GetProperty("promptSha256").GetString());
            Assert.Equal(("editor", "sh"), (receipt.GetProperty("agent").GetProperty("id").GetString(), receipt.GetProperty("agent").GetProperty("command")[0].GetString()));
            Assert.Equal(("bwrap", "none", 0), (receipt.GetProperty("sandbox").GetProperty("backend").GetString(), receipt.GetProperty("sandbox").GetProperty("network").GetString(), receipt.GetProperty("exitCode").GetInt32()));
            var artifacts = receipt.GetProperty("artifacts").EnumerateArray().ToList();
            Assert.Equal(["diff.patch", "workspace/out/report.txt"], artifacts.Select(a => a.GetProperty("name").GetString()));
            foreach (var artifact in artifacts)
            {
                var bytes = await client.GetByteArrayAsync($"/v1/jobs/receipt-1/artifacts/{artifact.GetProperty("name").GetString()}");
                Assert.Equal(artifact.GetProperty("sha256").GetString(), Sha256(bytes));
                Assert.Equal(artifact.GetProperty("size").GetInt64(), bytes.Length);
            }
            Assert.Equal(receipt.GetProperty("diffSha256").GetString(), Sha256(await client.GetByteArrayAsync("/v1/jobs/receipt-1/artifacts/diff.patch")));

            var verified = await CliAsync("jobs", "receipt", "receipt-1", "--verify");
            Assert.Equal(0, verified.Exit);
            Assert.Equal(3, verified.Output.Split('\n').Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));

            // A stored file changed afterwards no longer matches its receipt.
            var report = Directory.EnumerateFiles(_dir.Combine("data", "artifacts"), "report.txt", SearchOption.AllDirectories).Single();
            File.AppendAllText(report, "tampered\n");
            var tampered = await CliAsync("jobs", "receipt", "receipt-1", "--verify");
            Assert.Equal(1, tampered.Exit);
            Assert.Contains("MISMATCH", tampered.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ResultsTable_GetsARowPerFinishedJob()
    {
        var url = System.Environment.GetEnvironmentVariable("POSTGRES_URL")
            ?? throw new InvalidOperationException("POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a PostgreSQL server");
        var schema = $"aw_results_{Guid.NewGuid():N}";
        var server = new Uri(url);
        await using var database = NpgsqlDataSource.Create(
            $"Host={server.Host};Port={server.Port};Username={server.UserInfo.Split(':')[0]};Database={server.AbsolutePath.Trim('/')}");
        await database.CreateCommand($"CREATE SCHEMA {schema}").ExecuteNonQueryAsync();
        try
        {
            var (worker, client) = await ServeAsync(new() { ["RESULTS_TABLE"] = $"{schema}.audit_results", ["RESULTS_POSTGRES_URL"] = url });
            await using (worker)
            using (client)
            {
                var job = await RunJobAsync(client, worker, "row-1");
                async Task<(string, string, int, int, int, string, string, string)> ReadRowAsync()
                {
                    await using var read = database.CreateCommand(
                        $"SELECT status, state, health_score, findings_warnings, jsonb_array_length(findings), commit_before, mode, agent_id FROM {schema}.audit_results WHERE task_id = 'row-1'");
                    await using var reader = await read.ExecuteReaderAsync();
                    return await reader.ReadAsync()
                        ? (reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt32(3), reader.GetInt32(4), reader.GetString(5), reader.GetString(6), reader.GetString(7))
                        : default;
                }
                var row = await Eventually.UntilAsync(async () =>
                {
                    try
                    {
                        return await ReadRowAsync();
                    }
                    catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
                    {
                        // The worker creates the table with its first row.
                        return default;
                    }
                }, r => r != default, JobDeadline, "results row written");

                Assert.Equal(("success", "succeeded", 96, 1, 1, _remote.Head("main"), "dry_run", "editor"), row);
                Assert.Equal(job.GetProperty("result").GetProperty("changes").GetProperty("commitBefore").GetString(), row.Item6);
            }
        }
        finally
        {
            await database.CreateCommand($"DROP SCHEMA {schema} CASCADE").ExecuteNonQueryAsync();
        }
    }

    private async Task<(int Exit, string Output)> CliAsync(params string[] args)
    {
        var cli = WorkerProcess.Start(new Dictionary<string, string> { ["AGENT_WORKER_DATA"] = _dir.Combine("data"), ["AGENTS_FILE"] = AgentsFile() }, args);
        await using (cli)
            return (await cli.WaitForExitAsync(TimeSpan.FromSeconds(60)), cli.Output);
    }

    public void Dispose()
    {
        _remote.Dispose();
        _source.Dispose();
        _dir.Dispose();
    }
}
