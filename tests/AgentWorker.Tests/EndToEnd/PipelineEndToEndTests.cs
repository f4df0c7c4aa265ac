using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>Acceptance scenarios run against real worker processes, a real git repository and the SQLite file they share.</summary>
public sealed class PipelineEndToEndTests : IDisposable
{
    private const string ApiKey = "dev_secret";
    private static readonly TimeSpan JobDeadline = TimeSpan.FromSeconds(90);

    private readonly TempDirectory _dir = new("aw-e2e");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string>
    {
        ["src/one/settings.py"] = "MAX_RETRIES = 3\nTIMEOUT = 30\nHOST = 'a'\nPORT = 1\nUSER = 'x'\nNAME = 'y'\n",
        ["src/two/settings.py"] = "MAX_RETRIES = 3\nTIMEOUT = 30\nHOST = 'a'\nPORT = 1\nUSER = 'x'\nNAME = 'y'\n",
        ["README.md"] = "demo\n",
    });

    private string WorkDir => _dir.Combine("work");
    private string Side => _dir.Combine("side-effects");

    /// <summary>Where the `gate` agent waits for a file named like its prompt before it finishes.</summary>
    private string Release => _dir.Combine("release");

    // A unique number per test: the agent's three processes run `sleep <marker>`, which is how survivors are found on
    // the host (inside the sandbox pids are namespaced). One is a background child, one a setsid'd grandchild.
    private readonly string _marker = Random.Shared.Next(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private const string Tree = "sleep $0 & setsid sh -c 'exec sleep $0' $0 & echo ready; exec sleep $0";

    /// <summary>
    /// Agents used by the scenarios. `tree` and `sleeper` run sandboxed; `once` and `failing` report through files
    /// outside the workspace, so the scenarios that use them to count side effects run with SANDBOX=none.
    /// </summary>
    private string AgentsFile()
    {
        var file = _dir.Combine("agents.yaml");
        File.WriteAllText(file, $$"""
            agents:
              - id: tree
                command: ["sh", "-c", "{{Tree}}", "{prompt}"]
                timeoutSeconds: 2
              - id: sleeper
                command: ["sh", "-c", "{{Tree}}", "{prompt}"]
              - id: once
                command: ["sh", "-c", "echo \"start $$\" >> {{Side}}; sleep 6; echo done >> {{Side}}; echo '{\"type\":\"finding\",\"severity\":\"low\",\"rule\":\"r\",\"message\":\"m\"}'"]
              - id: grower
                command: ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo x > f$i.txt; i=$((i+1)); done"]
              - id: failing
                command: ["sh", "-c", "echo \"attempt output\"; echo 'to stderr' >&2; exit 3"]
              - id: gate
                command: ["sh", "-c", "echo \"start $0\" >> {{Side}}; while [ ! -e {{Release}}/$0 ]; do sleep 0.05; done; echo \"done $0\" >> {{Side}}", "{prompt}"]
            """);
        return file;
    }

    private Dictionary<string, string> Environment(int port = 0, Dictionary<string, string>? extra = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = WorkDir,
            ["AGENTS_FILE"] = AgentsFile(),
            ["RATE_LIMIT_PER_MINUTE"] = "0",
        };
        foreach (var (name, value) in extra ?? [])
            environment[name] = value;
        return environment;
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private StringContent NativeJob(string id, string agent, int maxAttempts = 3) =>
        Json(new JsonObject { ["id"] = id, ["agent"] = agent, ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = maxAttempts, ["prompt"] = _marker }.ToJsonString());

    private static readonly Dictionary<string, string> Unsandboxed = new() { ["SANDBOX"] = "none" };

    private static Dictionary<string, string> With(Dictionary<string, string> a, Dictionary<string, string> b) =>
        a.Concat(b).ToDictionary(p => p.Key, p => p.Value);

    private static async Task WaitForLogAsync(HttpClient client, string id, string line) =>
        await Eventually.UntilAsync(
            () => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs"),
            logs => logs.GetProperty("items").EnumerateArray().Any(e => e.GetProperty("message").GetString() == line),
            JobDeadline,
            $"job {id} logged '{line}'");

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(Dictionary<string, string>? extra = null)
    {
        var port = WorkerProcess.FreePort();
        var worker = WorkerProcess.Start(Environment(port, extra), "serve");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    private static async Task<JsonElement> WaitForStateAsync(HttpClient client, string id, string state, TimeSpan? deadline = null, WorkerProcess? worker = null) =>
        await Eventually.UntilAsync(
            () => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"),
            job => job.GetProperty("state").GetString() == state,
            deadline ?? JobDeadline,
            $"job {id} {state}{(worker is null ? "" : "\n" + worker.Output)}");

    private void AssertNoWorkspaceLeft() =>
        Assert.Empty(Directory.Exists(WorkDir) ? Directory.EnumerateFileSystemEntries(WorkDir) : []);

    private void AssertTreeDead() =>
        Assert.Empty(Processes.WithArgument(_marker));

    [Fact]
    public async Task SeedQueueExample_RunsBuiltInAuditor_AndReportsFindingsAndScore()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            var body = $$"""{"id":"test-001","agentId":"ssot_auditor","repoUrl":"{{_repo.Path}}","mode":"dry_run","requestedAt":"2026-01-01T00:00:00Z"}""";
            var response = await client.PostAsync("/queue", Json(body));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);

            var job = await WaitForStateAsync(client, "test-001", "succeeded", worker: worker);

            var result = job.GetProperty("result");
            Assert.Equal(0, result.GetProperty("exitCode").GetInt32());
            var findings = result.GetProperty("findings").EnumerateArray().ToList();
            Assert.Contains(findings, f => f.GetProperty("rule").GetString() == "duplicate-file");
            Assert.InRange(result.GetProperty("healthScore").GetInt32(), 0, 99);
            AssertNoWorkspaceLeft();
        }
    }

    [Fact]
    public async Task SeedQueueExample_OnPostgres_RunsAndReportsTheBackend()
    {
        var url = System.Environment.GetEnvironmentVariable("POSTGRES_URL")
            ?? throw new InvalidOperationException("POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a PostgreSQL server");
        var (worker, client) = await ServeAsync(new() { ["POSTGRES_URL"] = url, ["POSTGRES_SCHEMA"] = $"aw_e2e_{_marker}" });
        await using (worker)
        using (client)
        {
            var body = $$"""{"id":"pg-001","agentId":"ssot_auditor","repoUrl":"{{_repo.Path}}","mode":"dry_run","requestedAt":"2026-01-01T00:00:00Z"}""";
            Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/queue", Json(body))).StatusCode);

            var job = await WaitForStateAsync(client, "pg-001", "succeeded", worker: worker);
            var health = await client.GetFromJsonAsync<JsonElement>("/health");

            Assert.Contains(job.GetProperty("result").GetProperty("findings").EnumerateArray(), f => f.GetProperty("rule").GetString() == "duplicate-file");
            Assert.Equal("postgres", health.GetProperty("backend").GetProperty("name").GetString());
            Assert.Equal(1, health.GetProperty("succeeded").GetInt32());
        }
    }

    [Fact]
    public async Task RawLpushOnRedis_RunsTheSeedShape_AndDeadLettersGarbage()
    {
        var url = System.Environment.GetEnvironmentVariable("REDIS_URL")
            ?? throw new InvalidOperationException("REDIS_URL is not set: run the tests with scripts/test.sh, which starts a Redis server");
        var port = new Uri(url).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var queue = $"agent_jobs_{_marker}";
        var (worker, client) = await ServeAsync(new() { ["REDIS_URL"] = url, ["QUEUE_NAME"] = queue, ["DEFAULT_AGENT"] = "ssot_auditor" });
        await using (worker)
        using (client)
        {
            // Exactly what the seed's producers do.
            await RedisCliAsync(port, "LPUSH", queue, $$"""{"id":"job-123","repo_url":"{{_repo.Path}}","branch":"main","prompt":"x"}""");
            await RedisCliAsync(port, "LPUSH", queue, "this is not json");
            // The worker takes raw pushes asynchronously; the job exists once it has.
            await Eventually.UntilAsync(async () => (await client.GetAsync("/v1/jobs/job-123")).StatusCode, s => s == HttpStatusCode.OK, JobDeadline, "raw push taken");

            var job = await WaitForStateAsync(client, "job-123", "succeeded", worker: worker);
            var dead = await Eventually.UntilAsync(() => RedisCliAsync(port, "LRANGE", $"{{{queue}}}:dead", "0", "-1"), d => d.Contains("this is not json", StringComparison.Ordinal), JobDeadline, "garbage dead-lettered");

            Assert.Equal("main", job.GetProperty("repo").GetProperty("branch").GetString());
            Assert.Contains("reason", dead, StringComparison.Ordinal);
            Assert.Equal("redis", (await client.GetFromJsonAsync<JsonElement>("/health")).GetProperty("backend").GetProperty("name").GetString());
        }
    }

    private static async Task<string> RedisCliAsync(string port, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("redis-cli", ["-p", port, .. args]) { RedirectStandardOutput = true };
        using var cli = System.Diagnostics.Process.Start(start)!;
        var output = await cli.StandardOutput.ReadToEndAsync();
        await cli.WaitForExitAsync();
        return output;
    }

    [Fact]
    public async Task AgentOutlivingItsTimeout_EndsTimedOut_WithWholeTreeKilled()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("slow-1", "tree"));

            var job = await WaitForStateAsync(client, "slow-1", "timed_out", worker: worker);

            Assert.Contains("did not finish within 2s", job.GetProperty("error").GetString(), StringComparison.Ordinal);
            AssertTreeDead();
            AssertNoWorkspaceLeft();
        }
    }

    [Fact]
    public async Task CancellingARunningJob_EndsCancelledWithinTwoSeconds_WithWholeTreeKilled()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("long-1", "sleeper"));
            await WaitForLogAsync(client, "long-1", "ready");
            Assert.True(Processes.WithArgument(_marker).Count >= 3, "the agent, its child and its setsid grandchild are running");

            var cancel = await client.PostAsync("/v1/jobs/long-1/cancel", null);

            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
            await WaitForStateAsync(client, "long-1", "cancelled", TimeSpan.FromSeconds(2), worker);
            AssertTreeDead();
            await Eventually.UntilAsync(() => !Directory.EnumerateFileSystemEntries(WorkDir).Any(), TimeSpan.FromSeconds(5), "workspace removed");
        }
    }

    [Fact]
    public async Task FailingAgent_IsRetriedWithBackoff_ThenDead_KeepingEveryAttempt()
    {
        var (worker, client) = await ServeAsync(new() { ["RETRY_BASE_DELAY_SECONDS"] = "0.2" });
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("fail-1", "failing", maxAttempts: 3));

            var job = await WaitForStateAsync(client, "fail-1", "dead", worker: worker);

            Assert.Equal(3, job.GetProperty("attempts").GetInt32());
            Assert.Equal("agent failing exited with code 3: to stderr", job.GetProperty("error").GetString());
            var history = job.GetProperty("attemptHistory").EnumerateArray().ToList();
            Assert.Equal([1, 2, 3], history.Select(a => a.GetProperty("number").GetInt32()));
            Assert.All(history, a => Assert.Equal(3, a.GetProperty("exitCode").GetInt32()));
            // Backoff: each attempt starts after the previous one finished.
            for (var i = 1; i < history.Count; i++)
                Assert.True(history[i].GetProperty("startedAt").GetDateTimeOffset() > history[i - 1].GetProperty("finishedAt").GetDateTimeOffset());

            var logs = await client.GetFromJsonAsync<JsonElement>("/v1/jobs/fail-1/logs");
            var lines = logs.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("kind").GetString() == "log").ToList();
            Assert.Equal([1, 2, 3], lines.Where(e => e.GetProperty("message").GetString() == "attempt output").Select(e => e.GetProperty("attempt").GetInt32()));
            Assert.Equal(3, lines.Count(e => e.GetProperty("stream").GetString() == "stderr"));
            AssertNoWorkspaceLeft();
        }
    }

    [Fact]
    public async Task FollowingLogs_StreamsServerSentEventsUntilTheJobEnds()
    {
        var (worker, client) = await ServeAsync(new() { ["RETRY_BASE_DELAY_SECONDS"] = "0.1" });
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("follow-1", "failing", maxAttempts: 2));

            using var response = await client.GetAsync("/v1/jobs/follow-1/logs?follow=true", HttpCompletionOption.ResponseHeadersRead);
            var stream = await response.Content.ReadAsStringAsync();

            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("event: log", stream, StringComparison.Ordinal);
            Assert.Contains("attempt output", stream, StringComparison.Ordinal);
            Assert.EndsWith("event: end\ndata: {\"state\":\"dead\"}\n\n", stream, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WorkerKilledMidJob_AnotherWorkerRunsItAfterTheLease_SucceedingExactlyOnce()
    {
        // Counts the agent's side effects in a host file, so the agent runs unsandboxed; the lease logic is the same either way.
        var leases = With(Unsandboxed, new() { ["LEASE_SECONDS"] = "3", ["HEARTBEAT_SECONDS"] = "1" });
        var first = WorkerProcess.Start(Environment(extra: leases), "run", "--timeout", "1");
        await using (first)
        {
            var enqueue = WorkerProcess.Start(Environment(), "enqueue", "--job-id", "crash-1", "--agent", "once", "--repo-url", _repo.Path);
            await using (enqueue)
                Assert.Equal(0, await enqueue.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            await Eventually.UntilAsync(() => File.Exists(Side) && File.ReadAllText(Side).Contains("start", StringComparison.Ordinal), JobDeadline, "first attempt started");
            var orphan = int.Parse(File.ReadAllLines(Side)[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);

            first.KillHard();
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));

            var port = WorkerProcess.FreePort();
            var second = WorkerProcess.Start(Environment(port, leases), "serve");
            await using (second)
            {
                using var client = WorkerProcess.Client(port, ApiKey);
                await second.WaitReadyAsync(client);
                // The dead worker's agent is killed by the next worker on this host, so it cannot finish behind our back.
                await Eventually.UntilAsync(() => !Processes.IsAlive(orphan), TimeSpan.FromSeconds(20), "orphaned agent killed");

                var job = await WaitForStateAsync(client, "crash-1", "succeeded", worker: second);

                Assert.Equal(2, job.GetProperty("attempts").GetInt32());
                var outcomes = job.GetProperty("attemptHistory").EnumerateArray().Select(a => a.GetProperty("outcome").GetString()).ToList();
                Assert.Equal(1, outcomes.Count(o => o == "succeeded"));
                Assert.Equal(1, File.ReadAllLines(Side).Count(l => l == "done"));
                Assert.Equal(2, File.ReadAllLines(Side).Count(l => l.StartsWith("start", StringComparison.Ordinal)));
                // The first worker's workspace was swept when the second started; the second removed its own.
                AssertNoWorkspaceLeft();
            }
        }
    }

    [Fact]
    public async Task WorkerKilledMidJob_SandboxedAgentDiesWithIt()
    {
        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("orphan-1", "sleeper"));
            await WaitForLogAsync(client, "orphan-1", "ready");

            worker.KillHard();

            await Eventually.UntilAsync(() => Processes.WithArgument(_marker).Count == 0, TimeSpan.FromSeconds(10), "sandboxed agent tree gone with its worker");
        }
    }

    [Fact]
    public async Task AgentGrowingTheWorkspacePastItsLimits_FailsWithTheReason()
    {
        var (worker, client) = await ServeAsync(new() { ["MAX_REPO_FILES"] = "200" });
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("grow-1", "grower"));

            var job = await WaitForStateAsync(client, "grow-1", "failed", worker: worker);

            Assert.Contains("workspace after the run", job.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Contains("MAX_REPO_FILES", job.GetProperty("error").GetString(), StringComparison.Ordinal);
            AssertNoWorkspaceLeft();
        }
    }

    [Fact]
    public async Task StaleWorkspace_IsSweptWhenAWorkerStarts()
    {
        var stale = Path.Combine(WorkDir, "old-job-abc123");
        Directory.CreateDirectory(Path.Combine(stale, "repo"));
        File.WriteAllText(Path.Combine(stale, ".agent-worker.lock"), "");

        var (worker, client) = await ServeAsync();
        await using (worker)
        using (client)
            await Eventually.UntilAsync(() => !Directory.Exists(stale), TimeSpan.FromSeconds(10), "stale workspace swept");
    }

    [Fact]
    public async Task Sigterm_LetsTheRunningJobFinish_AndExitsZero()
    {
        var (worker, client) = await ServeAsync(With(Unsandboxed, new() { ["SHUTDOWN_GRACE_SECONDS"] = "60" }));
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("graceful-1", "once"));
            await Eventually.UntilAsync(() => File.Exists(Side), JobDeadline, "job started");

            worker.Terminate();

            Assert.Equal(0, await worker.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("done", File.ReadAllLines(Side));
        }
        var (restarted, again) = await ServeAsync(Unsandboxed);
        await using (restarted)
        using (again)
            Assert.Equal("succeeded", (await again.GetFromJsonAsync<JsonElement>("/v1/jobs/graceful-1")).GetProperty("state").GetString());
    }

    [Fact]
    public async Task Sigterm_AfterGracePeriod_HandsTheJobBack()
    {
        var (worker, client) = await ServeAsync(new() { ["SHUTDOWN_GRACE_SECONDS"] = "0.5" });
        await using (worker)
        using (client)
        {
            await client.PostAsync("/v1/jobs", NativeJob("handback-1", "sleeper"));
            await WaitForLogAsync(client, "handback-1", "ready");

            worker.Terminate();

            Assert.Equal(0, await worker.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            AssertTreeDead();
            AssertNoWorkspaceLeft();
        }
        var stats = WorkerProcess.Start(Environment(), "jobs", "show", "handback-1");
        await using (stats)
        {
            Assert.Equal(0, await stats.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("\"state\": \"queued\"", stats.Output, StringComparison.Ordinal);
            Assert.Contains("\"attempts\": 0", stats.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Sigterm_WithJobsRunningAndQueued_LeasesNothingNew_FinishesOrHandsBack_AndLosesNothing()
    {
        // Counts the agents' side effects in a host file, so they run unsandboxed; shutdown is the same either way.
        Directory.CreateDirectory(Release);
        var settings = With(Unsandboxed, new() { ["WORKERS"] = "2", ["SHUTDOWN_GRACE_SECONDS"] = "8" });
        var (worker, client) = await ServeAsync(settings);
        await using (worker)
        using (client)
        {
            // Both slots busy, then two more jobs wait in the queue.
            foreach (var id in new[] { "finishes", "overruns" })
                Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", GateJob(id))).StatusCode);
            await Eventually.UntilAsync(() => Lines("start").Count == 2, JobDeadline, "both running jobs started");
            foreach (var id in new[] { "waiting-1", "waiting-2" })
                Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsync("/v1/jobs", GateJob(id))).StatusCode);

            worker.Terminate();
            // One running job ends within the grace period; its slot must not take a waiting job.
            File.WriteAllText(Path.Combine(Release, "finishes"), "");

            Assert.Equal(0, await worker.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }

        // The waiting jobs never started; the overrunning one was stopped, not finished.
        Assert.Equal(["done finishes", "start finishes", "start overruns"], Lines().Order(StringComparer.Ordinal));
        var states = await JobTableAsync();
        Assert.Equal(("succeeded", "1/3"), states["finishes"]);
        Assert.Equal(("queued", "0/3"), states["overruns"]);
        Assert.Equal(("queued", "0/3"), states["waiting-1"]);
        Assert.Equal(("queued", "0/3"), states["waiting-2"]);
        AssertNoWorkspaceLeft();

        // Nothing was lost: a new worker runs the three that were given back, and the finished one not again.
        foreach (var id in new[] { "overruns", "waiting-1", "waiting-2" })
            File.WriteAllText(Path.Combine(Release, id), "");
        var (restarted, again) = await ServeAsync(settings);
        await using (restarted)
        using (again)
        {
            foreach (var id in new[] { "overruns", "waiting-1", "waiting-2" })
                await WaitForStateAsync(again, id, "succeeded", worker: restarted);
            Assert.Equal("succeeded", (await again.GetFromJsonAsync<JsonElement>("/v1/jobs/finishes")).GetProperty("state").GetString());
        }
        Assert.All(new[] { "finishes", "overruns", "waiting-1", "waiting-2" }, id => Assert.Single(Lines("done"), $"done {id}"));
        Assert.Equal(2, Lines("start").Count(l => l == "start overruns"));
        Assert.Single(Lines("start"), "start finishes");
    }

    private StringContent GateJob(string id) =>
        Json(new JsonObject { ["id"] = id, ["agent"] = "gate", ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["prompt"] = id }.ToJsonString());

    /// <summary>The side-effect lines, all or those starting with <paramref name="prefix"/>.</summary>
    private List<string> Lines(string prefix = "") =>
        File.Exists(Side) ? [.. File.ReadAllLines(Side).Where(l => l.StartsWith(prefix, StringComparison.Ordinal))] : [];

    /// <summary>Job id → (state, attempts) as `jobs list` prints them, read from the store with the worker stopped.</summary>
    private async Task<Dictionary<string, (string State, string Attempts)>> JobTableAsync()
    {
        var list = WorkerProcess.Start(Environment(), "jobs", "list");
        await using (list)
        {
            Assert.Equal(0, await list.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            return list.Output.Split('\n').Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(c => c.Length >= 4)
                .ToDictionary(c => c[0], c => (c[1], c[3]));
        }
    }

    public void Dispose()
    {
        _repo.Dispose();
        _dir.Dispose();
    }
}
