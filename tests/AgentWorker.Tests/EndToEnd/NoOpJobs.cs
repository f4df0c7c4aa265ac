using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// Many cheap jobs through real worker processes sharing one Redis or PostgreSQL queue, counted twice: in the store
/// (one succeeded attempt per job) and by the agent's own side effect (each run appends its job id to a host file).
/// The agent writes outside its workspace, so the workers run it unsandboxed; leasing is the same either way.
/// </summary>
internal sealed class NoOpJobs : IDisposable
{
    public const string ApiKey = "dev_secret";

    private readonly TempDirectory _dir = new("aw-noop");
    private readonly TestRepository _repo = TestRepository.Create(new Dictionary<string, string> { ["README.md"] = "no-op\n" });

    public NoOpJobs()
    {
        File.WriteAllText(AgentsFile, $$"""
            agents:
              - id: noop
                command: ["sh", "-c", "echo \"$AGENT_WORKER_JOB_ID\" >> {{Ran}}"]
            """);
    }

    /// <summary>Unique per scenario, for queue and schema names on a shared server.</summary>
    public string Nonce { get; } = Guid.NewGuid().ToString("N")[..12];

    /// <summary>One line per run of the agent: the job id.</summary>
    public string Ran => _dir.Combine("ran");

    private string AgentsFile => _dir.Combine("agents.yaml");

    /// <summary>A worker's environment: the given backend, short leases, no intake limits, the no-op agent.</summary>
    public Dictionary<string, string> Environment(IReadOnlyDictionary<string, string> backend, int port = 0, string logLevel = "warn")
    {
        var environment = new Dictionary<string, string>(backend)
        {
            ["AGENT_WEBHOOK_SECRET"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = AgentsFile,
            ["SANDBOX"] = "none",
            ["WORKERS"] = "3",
            ["LEASE_SECONDS"] = "3",
            ["HEARTBEAT_SECONDS"] = "0.5",
            ["RATE_LIMIT_PER_MINUTE"] = "0",
            ["MAX_QUEUE_DEPTH"] = "0",
            // Jobs must not end dead because a kill or an outage cost them an attempt or two.
            ["RETRY_BASE_DELAY_SECONDS"] = "0.2",
            ["LOG_LEVEL"] = logLevel,
        };
        return environment;
    }

    public StringContent JobFor(string id) =>
        new(new JsonObject { ["id"] = id, ["agent"] = "noop", ["repo"] = new JsonObject { ["url"] = _repo.Path }, ["maxAttempts"] = 5 }.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>Posts the jobs over HTTP, a few at a time; each must be accepted as new.</summary>
    public async Task EnqueueAsync(HttpClient client, IEnumerable<string> ids) =>
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, cancellationToken) =>
        {
            using var response = await client.PostAsync("/v1/jobs", JobFor(id), cancellationToken);
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"job {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
        });

    public static async Task<JsonElement> HealthAsync(HttpClient client) =>
        await client.GetFromJsonAsync<JsonElement>("/health");

    /// <summary>Every job in the store, read page by page over HTTP.</summary>
    public static async Task<List<JsonElement>> ListAllAsync(HttpClient client)
    {
        var jobs = new List<JsonElement>();
        while (true)
        {
            var page = await client.GetFromJsonAsync<JsonElement>($"/v1/jobs?limit=500&offset={jobs.Count}");
            var items = page.GetProperty("items").EnumerateArray().ToList();
            jobs.AddRange(items);
            if (items.Count == 0 || jobs.Count >= page.GetProperty("total").GetInt32())
                return jobs;
        }
    }

    /// <summary>
    /// Each of <paramref name="ids"/> is in the store succeeded, with exactly one succeeded attempt, and the agent ran
    /// for it at least once and at most once per recorded attempt (a run cut short by a kill or an outage may have
    /// had its side effect before its attempt was closed as lease_expired, but never one nobody recorded).
    /// Returns how many jobs needed more than one attempt.
    /// </summary>
    public int AssertEachSucceededOnce(IReadOnlyList<JsonElement> jobs, IReadOnlyCollection<string> ids)
    {
        Assert.Equal(ids.Count, jobs.Count);
        var byId = jobs.ToDictionary(job => job.GetProperty("id").GetString()!, StringComparer.Ordinal);
        Assert.Equal(ids.Order(StringComparer.Ordinal), byId.Keys.Order(StringComparer.Ordinal));
        var runs = File.ReadAllLines(Ran).GroupBy(line => line, StringComparer.Ordinal).ToDictionary(group => group.Key, group => group.Count(), StringComparer.Ordinal);
        var retried = 0;
        foreach (var (id, job) in byId)
        {
            Assert.True(job.GetProperty("state").GetString() == "succeeded", $"job {id} ended {job.GetProperty("state")}: {job}");
            var outcomes = job.GetProperty("attemptHistory").EnumerateArray().Select(a => a.GetProperty("outcome").GetString()).ToList();
            Assert.True(outcomes.Count(o => o == "succeeded") == 1, $"job {id}: attempts {string.Join(", ", outcomes)}");
            Assert.Equal(outcomes.Count, job.GetProperty("attempts").GetInt32());
            var ran = runs.GetValueOrDefault(id);
            Assert.True(ran >= 1 && ran <= outcomes.Count, $"job {id}: the agent ran {ran} time(s) for {outcomes.Count} recorded attempt(s)");
            if (outcomes.Count > 1)
                retried++;
        }
        Assert.Empty(runs.Keys.Except(byId.Keys, StringComparer.Ordinal));
        return retried;
    }

    public void Dispose()
    {
        _repo.Dispose();
        _dir.Dispose();
    }
}
