using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AgentWorker.Testing;
using AgentWorker.Tests.Artifacts;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Tests.Fuzz;
using FsCheck;
using FsCheck.Fluent;
using Npgsql;

namespace AgentWorker.Tests.Tasks;

/// <summary>
/// Acceptance 1: a real worker (`serve --intake postgres-tasks`) against a tasks database of its own PostgreSQL cluster,
/// in both of the seed's column variants, with artifacts going to the real S3-compatible server of the test script.
/// The agent runs sandboxed and waits for a file the test drops into its workspace, so "while it runs" is a fact, not a timing.
/// </summary>
public sealed class TasksPollerTests(TasksPostgres fixture) : IClassFixture<TasksPostgres>, IDisposable
{
    private const string ApiKey = "tasks-test-key";
    private const string AgentId = "7";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    // The seed's run_task.py shape: works in its fresh directory, leaves files in ./screenshots, prints its answer between markers.
    private const string Script = """
        echo '{"type":"progress","percent":30,"message":"browsing"}'
        while [ ! -e go ]; do sleep 0.05; done
        printf 'PNG-BYTES' > screenshots/shot1.png
        echo "field notes" > screenshots/notes.txt
        echo "some chatter"
        echo "AGENT_RESPONSE_START"
        echo "the answer is 42 for: $1"
        echo "AGENT_RESPONSE_END"
        """;

    private readonly TempDirectory _dir = new("aw-tasks");
    private readonly string _bucket = S3Server.NewBucket();

    /// <summary>Variant A: progress_percent/timestamp, integer ids, response in metadata, with binary_file_metadata.</summary>
    private const string SchemaA = """
        CREATE TABLE tasks (id serial PRIMARY KEY, agent_id text NOT NULL, title text, description text, status text,
            metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE task_progress (id serial PRIMARY KEY, task_id integer NOT NULL REFERENCES tasks(id), agent_id text,
            progress_percent integer, message text, "timestamp" timestamptz);
        CREATE TABLE binary_file_metadata (id serial PRIMARY KEY, task_id integer, agent_id text, bucket text, object_path text,
            file_name text, file_size bigint, content_type text, created_at timestamptz);
        """;

    /// <summary>Variant B: percent/created_at, uuid ids, a response column, no binary_file_metadata.</summary>
    private const string SchemaB = """
        CREATE TABLE tasks (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), agent_id text NOT NULL, title text, description text,
            status text, metadata jsonb, response text, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz);
        CREATE TABLE task_progress (task_id uuid NOT NULL, agent_id text, percent numeric, message text, created_at timestamptz);
        """;

    private sealed record Database(NpgsqlDataSource Source, string Url, bool VariantA) : IAsyncDisposable
    {
        public string Percent => VariantA ? "progress_percent" : "percent";

        public async Task<T> ScalarAsync<T>(string sql, params object[] args)
        {
            await using var command = Source.CreateCommand(sql);
            foreach (var arg in args)
                command.Parameters.Add(new NpgsqlParameter { Value = arg });
            return (T)(await command.ExecuteScalarAsync())!;
        }

        public async Task<List<(double? Percent, string Message)>> ProgressAsync(object taskId)
        {
            await using var command = Source.CreateCommand($"SELECT {Percent}::float8, message FROM task_progress WHERE task_id = $1 ORDER BY {(VariantA ? "\"timestamp\"" : "created_at")}, ctid");
            command.Parameters.Add(new NpgsqlParameter { Value = taskId });
            var rows = new List<(double?, string)>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                rows.Add((reader.IsDBNull(0) ? null : reader.GetDouble(0), reader.GetString(1)));
            return rows;
        }

        public async Task<object> AddTaskAsync(string agent, string title, string description, TimeSpan age) =>
            await ScalarAsync<object>("INSERT INTO tasks (agent_id, title, description, status, metadata, created_at) VALUES ($1, $2, $3, 'pending', '{\"origin\":\"test\"}', now() - $4) RETURNING id",
                agent, title, description, age);

        public ValueTask DisposeAsync() => Source.DisposeAsync();
    }

    private async Task<Database> CreateDatabaseAsync(bool variantA)
    {
        var url = fixture.Server.DatabaseUrl(await fixture.Server.CreateDatabaseAsync());
        var source = NpgsqlDataSource.Create(Storage.Postgres.PostgresConnectionString.Parse(url).ConnectionString);
        await using (var command = source.CreateCommand(variantA ? SchemaA : SchemaB))
            await command.ExecuteNonQueryAsync();
        return new Database(source, url, variantA);
    }

    private string WorkDir => _dir.Combine("work");

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(Database db, string script = Script)
    {
        File.WriteAllText(_dir.Combine("agents.yaml"), $$"""
            agents:
              - id: cua
                command: ["sh", "-c", {{JsonSerializer.Serialize(script)}}, "agent", "{prompt}"]
            """);
        var port = WorkerProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = WorkDir,
            ["AGENTS_FILE"] = _dir.Combine("agents.yaml"),
            ["POSTGRES_DSN"] = db.Url,
            ["AGENT_ID"] = AgentId,
            ["DEFAULT_AGENT"] = "cua",
            ["POLL_INTERVAL_SECONDS"] = "0.2",
            ["RUN_TASK_TIMEOUT_SECONDS"] = "60",
        };
        foreach (var (name, value) in S3Server.Settings(_bucket))
            environment[name] = value;
        var worker = WorkerProcess.Start(environment, "serve", "--intake", "postgres-tasks");
        var client = WorkerProcess.Client(port, ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    private static async Task WaitForJobAsync(HttpClient client, string id, string state, WorkerProcess worker) =>
        await Eventually.UntilAsync(async () =>
        {
            var response = await client.GetAsync($"/v1/jobs/{id}");
            return response.IsSuccessStatusCode ? (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("state").GetString() : "absent";
        }, s => s == state, Deadline, $"job {id} {state}\n{worker.Output}");

    private static Task<List<(double? Percent, string Message)>> WaitForProgressAsync(Database db, object taskId, Func<List<(double? Percent, string Message)>, bool> done, string what, WorkerProcess worker) =>
        Eventually.UntilAsync(() => db.ProgressAsync(taskId), done, Deadline, $"{what}\n{worker.Output}");

    private static int Heartbeats(List<(double? Percent, string Message)> rows) => rows.Count(r => r.Message.StartsWith("working...", StringComparison.Ordinal));

    /// <summary>Lets the waiting agent go on: drops `go` into the workspace it sees as /workspace.</summary>
    private void Release(string jobId)
    {
        var workspace = Directory.GetDirectories(WorkDir, $"{jobId}-*").Single();
        File.WriteAllText(Path.Combine(workspace, "repo", "go"), "");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Task_Runs_WithHeartbeats_ArtifactsInS3_FinalRowAndResponse(bool variantA)
    {
        await using var db = await CreateDatabaseAsync(variantA);
        var older = await db.AddTaskAsync(AgentId, "older", "an older task", TimeSpan.FromHours(1));
        var taskId = await db.AddTaskAsync(AgentId, "Find the answer", "look it up", TimeSpan.FromMinutes(1));
        var othersTask = await db.AddTaskAsync("someone-else", "not ours", "x", TimeSpan.Zero);
        var jobId = $"task-{taskId}";
        var (worker, client) = await ServeAsync(db);
        await using (worker)
        using (client)
        {
            // While the agent runs (it waits for us), heartbeat rows go in, carrying its last progress; no 100 yet.
            var running = await WaitForProgressAsync(db, taskId, rows => Heartbeats(rows) >= 2 && rows.Any(r => r.Message.Contains("(browsing)", StringComparison.Ordinal)), "heartbeats while running", worker);
            Assert.DoesNotContain(running, r => r.Percent >= 100);
            Assert.Equal(("Task started", 0.0), (running[0].Message, running[0].Percent!.Value));
            Assert.Contains(running, r => r.Message == "working... (browsing)" && r.Percent == 30);
            await WaitForJobAsync(client, jobId, "running", worker);

            Release(jobId);
            var rows = await WaitForProgressAsync(db, taskId, r => r.Any(p => p.Percent == 100), "final 100 row", worker);
            await WaitForJobAsync(client, jobId, "succeeded", worker);

            // The end: one row per upload, then the 100 row last.
            Assert.Equal((100.0, "completed (return_code=0, screenshots=2)"), (rows[^1].Percent!.Value, rows[^1].Message));
            var uploads = rows.Where(r => r.Message.StartsWith("uploaded screenshot: ", StringComparison.Ordinal)).Select(r => r.Message["uploaded screenshot: ".Length..]).ToList();
            Assert.Equal(2, uploads.Count);
            Assert.All(uploads, key => Assert.Matches($"^agent{AgentId}/screenshots/[0-9a-f-]{{36}}\\.(png|txt)$", key));
            var png = uploads.Single(k => k.EndsWith(".png", StringComparison.Ordinal));
            Assert.Equal("PNG-BYTES", Encoding.UTF8.GetString(await S3Server.ReadAsync(_bucket, png)));
            Assert.Equal("field notes\n", Encoding.UTF8.GetString(await S3Server.ReadAsync(_bucket, uploads.Single(k => k.EndsWith(".txt", StringComparison.Ordinal)))));

            Assert.Equal("completed", await db.ScalarAsync<string>("SELECT status FROM tasks WHERE id = $1", taskId));
            var response = variantA
                ? await db.ScalarAsync<string>("SELECT metadata->>'response' FROM tasks WHERE id = $1", taskId)
                : await db.ScalarAsync<string>("SELECT response FROM tasks WHERE id = $1", taskId);
            Assert.Equal("the answer is 42 for: look it up", response);
            if (variantA)
            {
                Assert.Equal("test", await db.ScalarAsync<string>("SELECT metadata->>'origin' FROM tasks WHERE id = $1", taskId));
                Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM binary_file_metadata WHERE task_id = $1 AND bucket = $2 AND agent_id = $3", taskId, _bucket, AgentId));
                Assert.Equal(9L, await db.ScalarAsync<long>("SELECT file_size FROM binary_file_metadata WHERE object_path = $1", png));
            }
            else
            {
                Assert.Contains("no binary_file_metadata table", worker.Output);
            }

            // Column variants detected once and logged.
            var variants = variantA ? "task_progress.progress_percent, task_progress.timestamp" : "task_progress.percent, task_progress.created_at";
            Assert.Single(worker.Output.Split('\n'), l => l.Contains($"Tasks database columns: {variants}", StringComparison.Ordinal));

            // Per-task structured logs in agent_logs.
            var logs = await Eventually.UntilAsync(() => db.ScalarAsync<string>("SELECT coalesce(string_agg(level || ' ' || message, '|' ORDER BY id), '') FROM agent_logs WHERE task_id = $1 AND agent_id = $2", taskId.ToString()!, AgentId),
                l => l.Contains("Task completed", StringComparison.Ordinal), Deadline, "agent_logs rows");
            Assert.Contains("info Task picked: Find the answer", logs);
            Assert.Contains($"info Screenshot uploaded: {png}", logs);

            // Only the most recent task of this agent ran.
            Assert.Empty(await db.ProgressAsync(older));
            Assert.Empty(await db.ProgressAsync(othersTask));
            var job = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{jobId}");
            Assert.Equal(2, job.GetProperty("result").GetProperty("collectedArtifacts").GetArrayLength());
        }
    }

    [Fact]
    public async Task TaskAlreadyAt100_IsSkipped()
    {
        await using var db = await CreateDatabaseAsync(variantA: true);
        var done = await db.AddTaskAsync(AgentId, "done", "finished before", TimeSpan.FromMinutes(1));
        await db.ScalarAsync<object>("INSERT INTO task_progress (task_id, agent_id, progress_percent, message, \"timestamp\") VALUES ($1, '7', 50, 'half', now()), ($1, '7', 100, 'done', now()) RETURNING 1", done);
        var (worker, client) = await ServeAsync(db);
        await using (worker)
        using (client)
        {
            await Eventually.UntilAsync(() => worker.Output.Contains($"Task {done} already at 100%: skipped", StringComparison.Ordinal), Deadline, $"skip logged\n{worker.Output}");

            Assert.Equal(0, (await client.GetFromJsonAsync<JsonElement>("/v1/jobs")).GetProperty("total").GetInt32());
            Assert.Equal(2, (await db.ProgressAsync(done)).Count);
        }
    }

    [Fact]
    public async Task PostgresKilledMidRun_WorkerReconnects_AndFinishesTheTask()
    {
        await using var db = await CreateDatabaseAsync(variantA: true);
        var taskId = await db.AddTaskAsync(AgentId, "survive", "keep going", TimeSpan.Zero);
        var jobId = $"task-{taskId}";
        var (worker, client) = await ServeAsync(db);
        await using (worker)
        using (client)
        {
            var before = Heartbeats(await WaitForProgressAsync(db, taskId, rows => Heartbeats(rows) >= 2, "heartbeats before the outage", worker));
            await fixture.Server.StopAsync();
            await Eventually.UntilAsync(() => worker.Output.Contains("Tasks database unreachable", StringComparison.Ordinal), Deadline, $"outage noticed\n{worker.Output}");
            await fixture.Server.StartAgainAsync();
            // The test's own pooled connections died with the server too.
            db.Source.Clear();

            var after = await WaitForProgressAsync(db, taskId, rows => Heartbeats(rows) > before + 1, "heartbeats again after the restart", worker);
            Assert.Contains("Tasks database reachable again", worker.Output);
            Release(jobId);
            var rows = await WaitForProgressAsync(db, taskId, r => r.Any(p => p.Percent == 100), "final 100 row after the outage", worker);

            Assert.Equal(100, rows[^1].Percent);
            Assert.Equal("the answer is 42 for: keep going", await db.ScalarAsync<string>("SELECT metadata->>'response' FROM tasks WHERE id = $1", taskId));
            Assert.Equal(2, rows.Count(r => r.Message.StartsWith("uploaded screenshot: ", StringComparison.Ordinal)));
            Assert.Single(rows, r => r.Percent == 100);
            Assert.True(after.Count > 0);
            await WaitForJobAsync(client, jobId, "succeeded", worker);
        }
    }

    [Fact]
    public async Task TasksPoller_WithoutAgentId_ExitsTwo_NamingTheSetting()
    {
        await using var process = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["POSTGRES_URL"] = fixture.Server.DatabaseUrl("postgres"),
            ["DEFAULT_AGENT"] = "ssot_auditor",
        }, "tasks-poller");

        Assert.Equal(2, await process.WaitForExitAsync(Deadline));
        Assert.Contains("invalid setting --agent-id / AGENT_ID", process.Output);
    }

    private const int FuzzRows = 30;

    /// <summary>
    /// A tasks row as another program may leave it: any text PostgreSQL can hold as title, description (up to far beyond
    /// one argv string's limit) and status, and any JSON as metadata (where PostgreSQL refuses it, the row gets none).
    /// </summary>
    private static readonly Gen<(string? Title, string? Description, string? Status, string? Metadata)> FuzzedTask =
        from title in Gen.Frequency((1, Gen.Constant<string?>(null)), (4, FuzzInputs.StorableText.Select(t => (string?)t)))
        from description in Gen.Frequency(
            (1, Gen.Constant<string?>(null)),
            (6, FuzzInputs.StorableText.Select(t => (string?)t)),
            (1, Gen.Elements(131_072, 300_000).Select(n => (string?)new string('d', n))))
        from status in Gen.Frequency((1, Gen.Constant<string?>(null)), (3, FuzzInputs.StorableText.Select(t => (string?)t)))
        from metadata in Gen.Frequency((1, Gen.Constant<string?>(null)), (3, FuzzInputs.Value(3).Select(v => (string?)v)))
        select (title, description, status, metadata);

    [Fact]
    public async Task TaskRows_AnyContent_EachGetsItsFinalRow_AndTheWorkerKeepsServing()
    {
        var seed = FuzzInputs.NewSeed();
        await using var db = await CreateDatabaseAsync(variantA: true);
        const string Echo = """
            echo AGENT_RESPONSE_START
            printf '%.40s\n' "got $1"
            echo AGENT_RESPONSE_END
            """;
        var (worker, client) = await ServeAsync(db, Echo);
        await using (worker)
        using (client)
        {
            var (tried, withMetadata) = (0, 0);
            foreach (var (title, description, status, metadata) in FuzzInputs.Sample(FuzzedTask, FuzzRows, seed))
            {
                // Each row the newest, so it is the one the poller takes next.
                var hours = ++tried;
                async Task<object> InsertAsync(string? json) => await db.ScalarAsync<object>(
                    "INSERT INTO tasks (agent_id, title, description, status, metadata, created_at) VALUES ($1, $2, $3, $4, $5::jsonb, now() + $6 * interval '1 hour') RETURNING id",
                    AgentId, (object?)title ?? DBNull.Value, (object?)description ?? DBNull.Value, (object?)status ?? DBNull.Value, (object?)json ?? DBNull.Value, hours);
                object id;
                try
                {
                    id = await InsertAsync(metadata);
                    withMetadata += metadata is null ? 0 : 1;
                }
                catch (Exception e) when (e is PostgresException or EncoderFallbackException)
                {
                    // JSON PostgreSQL refuses (a \u0000 or lone surrogate escape, invalid syntax): no program can store it.
                    id = await InsertAsync(null);
                }
                var rows = await WaitForProgressAsync(db, id, r => r.Any(p => p.Percent == 100), $"seed {seed}: the final row of task {id} (description of {description?.Length} chars)", worker);
                Assert.Single(rows, r => r.Percent == 100);
                Assert.True(Processes.IsAlive(worker.Pid), $"seed {seed}: the worker died on task {id}\n{worker.Output}");
            }
            Assert.True(withMetadata > 0, $"seed {seed}: no generated metadata could be stored");

            // Still serving: a plain task after all that runs and answers.
            var last = await db.AddTaskAsync(AgentId, "plain", "after the fuzz", TimeSpan.FromHours(-FuzzRows - 1));
            await WaitForProgressAsync(db, last, r => r.Any(p => p.Percent == 100), $"seed {seed}: the plain task after the fuzzed rows", worker);
            Assert.Equal("got after the fuzz", await db.ScalarAsync<string>("SELECT metadata->>'response' FROM tasks WHERE id = $1", last));
        }
    }

    public void Dispose() => _dir.Dispose();
}
