using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// A hostile agent: <paramref name="Script"/> runs as <c>bash -c Script agent {prompt}</c>, so the job's
/// prompt is <c>$1</c>. Scripts print what they achieved to stdout; the tests read it back from the job log.
/// </summary>
public sealed record HostileAgent(string Id, string Script, int? TimeoutSeconds = null, IReadOnlyList<string>? Env = null);

/// <summary>
/// One real <c>agent-worker serve</c> per test class, with the sandbox left at its default, an agents.yaml
/// holding the class's hostile agents, a temp data dir and WORK_DIR, and a git repository for the jobs.
/// Subclasses name the agents, extra settings and repository files.
/// </summary>
public abstract class SandboxWorkerFixture : IAsyncLifetime
{
    /// <summary>Long enough for a slow clone and agent on a busy machine, short enough to fail fast.</summary>
    private static readonly TimeSpan JobDeadline = TimeSpan.FromSeconds(60);

    private static readonly string[] TerminalStates = ["succeeded", "failed", "dead", "cancelled", "timed_out"];

    private WorkerProcess? _worker;
    private TestRepository? _repo;

    /// <summary>
    /// The worker's data dir, config, WORK_DIR and the host targets live under /var/tmp, not /tmp: a sandbox
    /// whose private /tmp hid them would pass the tests without hiding anything a real install keeps elsewhere.
    /// The name is short because the mcp_only socket lives under WORK_DIR and socket paths are capped at 107 bytes.
    /// </summary>
    public TempDirectory Dir { get; } = new("aw", "/var/tmp");

    /// <summary>A value unique to this fixture, for markers the tests search the host for.</summary>
    public string Nonce { get; } = Guid.NewGuid().ToString("N")[..12];

    /// <summary>Also a secret the agents must never see.</summary>
    public string ApiKey { get; } = $"awkey-{Guid.NewGuid():N}";

    public virtual string DataDir => Dir.Combine("data");
    public string WorkDir => Dir.Combine("work");
    public virtual string AgentsFile => Dir.Combine("agents.yaml");

    /// <summary>A host directory anyone may write to: if an agent's write lands here, only the sandbox's mount isolation was missing.</summary>
    public string HostDir => Dir.Combine("host");

    public string RepoPath => _repo?.Path ?? throw new InvalidOperationException("fixture not initialized");

    public int Port { get; private set; }

    public HttpClient Client { get; private set; } = null!;

    internal WorkerProcess Worker => _worker ?? throw new InvalidOperationException("fixture not initialized");

    protected abstract IEnumerable<HostileAgent> Agents { get; }

    /// <summary>The agent-worker binary to start; by default the build output the tests run from.</summary>
    protected virtual string WorkerExecutable => Path.Combine(AppContext.BaseDirectory, "agent-worker");

    /// <summary>Worker settings (environment variables) on top of the common ones.</summary>
    protected virtual IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>();

    protected virtual IReadOnlyDictionary<string, string> RepositoryFiles => new Dictionary<string, string> { ["README.md"] = "attack target\n" };

    /// <summary>Runs before the worker starts (host listeners, extra repositories).</summary>
    protected virtual Task PrepareAsync() => Task.CompletedTask;

    /// <summary>Runs after the worker stopped (host listeners).</summary>
    protected virtual ValueTask ReleaseAsync() => ValueTask.CompletedTask;

    /// <summary>Adds what git cannot get from a file map (symlinks) to the fresh repository.</summary>
    protected virtual void ShapeRepository(TestRepository repository) { }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(HostDir);
        File.SetUnixFileMode(HostDir, (UnixFileMode)0x1FF);
        _repo = TestRepository.Create(RepositoryFiles);
        ShapeRepository(_repo);
        await PrepareAsync();
        WriteAgentsFile();

        Port = WorkerProcess.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["WORKER_API_KEY"] = ApiKey,
            ["PORT"] = Port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["AGENT_WORKER_DATA"] = DataDir,
            ["WORK_DIR"] = WorkDir,
            ["AGENTS_FILE"] = AgentsFile,
            ["RATE_LIMIT_PER_MINUTE"] = "0",
            ["MAX_QUEUE_DEPTH"] = "0",
            ["WORKERS"] = "2",
            ["JOB_TIMEOUT_SECONDS"] = "30",
        };
        foreach (var (name, value) in Settings)
            environment[name] = value;
        _worker = WorkerProcess.StartFrom(WorkerExecutable, environment, "serve");
        Client = WorkerProcess.Client(Port, ApiKey);
        // A worker an agent managed to stop (SIGSTOP) must fail a test quickly, not after HttpClient's 100 s.
        Client.Timeout = TimeSpan.FromSeconds(10);
        await _worker.WaitReadyAsync(Client);
        // The first answer compiles the route, and the first job the pipeline: the runs' health samples time the worker, not the JIT.
        using var warm = await Client.GetAsync("/health");
        if (WarmUp)
            (await RunAsync(WarmUpAgentId)).AssertFinished();
    }

    /// <summary>Runs one trivial job before the tests, so what they time is a worker past its first job.</summary>
    protected virtual bool WarmUp => false;

    /// <summary>The agent of the warm-up job, in every agents file the fixture writes (a fixture with its own registry adds it).</summary>
    protected const string WarmUpAgentId = "warm-up";

    private static readonly HostileAgent WarmUpAgent = new(WarmUpAgentId, "echo DONE");

    /// <summary>JSON is YAML; serializing avoids quoting shell scripts by hand.</summary>
    private void WriteAgentsFile()
    {
        var agents = new JsonArray();
        foreach (var agent in Agents.Append(WarmUpAgent))
        {
            var entry = new JsonObject
            {
                ["id"] = agent.Id,
                ["command"] = new JsonArray("bash", "-c", agent.Script, "agent", "{prompt}"),
            };
            if (agent.TimeoutSeconds is { } timeout)
                entry["timeoutSeconds"] = timeout;
            if (agent.Env is { } env)
                entry["env"] = new JsonArray([.. env.Select(name => JsonValue.Create(name))]);
            agents.Add(entry);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(AgentsFile)!);
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(AgentsFile, new JsonObject { ["agents"] = agents }.ToJsonString(options));
    }

    /// <summary>Enqueues one attempt of <paramref name="agent"/> and waits for the job's final state; returns the job and all its events.</summary>
    public async Task<AgentRun> RunAsync(string agent, string prompt = "", string network = "none", string? mcpUrl = null, string? repoUrl = null, string? id = null) =>
        await WaitAsync(await EnqueueAsync(agent, prompt, network, mcpUrl, repoUrl, id));

    /// <summary>Enqueues one attempt of <paramref name="agent"/> (maxAttempts 1); returns the job id.</summary>
    public async Task<string> EnqueueAsync(string agent, string prompt = "", string network = "none", string? mcpUrl = null, string? repoUrl = null, string? id = null)
    {
        id ??= $"{agent}-{Guid.NewGuid():N}"[..(agent.Length + 13)];
        var job = new JsonObject
        {
            ["id"] = id,
            ["agent"] = agent,
            ["repo"] = new JsonObject { ["url"] = repoUrl ?? RepoPath },
            ["prompt"] = prompt,
            ["network"] = network,
            ["maxAttempts"] = 1,
        };
        if (mcpUrl is not null)
            job["mcpUrl"] = mcpUrl;
        using var response = await Client.PostAsync("/v1/jobs", new StringContent(job.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"enqueue {agent}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return id;
    }

    /// <summary>Waits for the job's final state, asking <c>/health</c> all along; returns the job, all its events and the slowest health answer.</summary>
    public async Task<AgentRun> WaitAsync(string id)
    {
        using var health = WatchHealth();
        // A dead worker ends the wait at once: an agent that killed it is the failure to report, not a timeout.
        var final = await Eventually.UntilAsync(
            async () => Processes.IsAlive(Worker.Pid) ? await Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}") : (JsonElement?)null,
            j => j is not { } job || TerminalStates.Contains(job.GetProperty("state").GetString()),
            JobDeadline,
            $"job {id} ends\n{Tail(Worker.Output)}");
        Assert.True(final.HasValue, $"the worker died while job {id} ran\n{Tail(Worker.Output)}");
        return new AgentRun(id, final.Value, await EventsAsync(id)) { Health = health.Stop() };
    }

    private async Task<List<JsonElement>> EventsAsync(string id)
    {
        var events = new List<JsonElement>();
        long after = 0;
        while (true)
        {
            var page = await Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}/logs?after={after}");
            var items = page.GetProperty("items").EnumerateArray().ToList();
            if (items.Count == 0)
                return events;
            events.AddRange(items);
            after = items[^1].GetProperty("seq").GetInt64();
        }
    }

    /// <summary>Starts asking <c>/health</c> every 50 ms; <see cref="HealthWatch.Stop"/> says how it answered.</summary>
    internal HealthWatch WatchHealth() => new(Port);

    /// <summary>The worker survived whatever the agent did: its process lives and it still answers.</summary>
    public async Task AssertWorkerHealthyAsync()
    {
        Assert.True(Processes.IsAlive(Worker.Pid), $"worker {Worker.Pid} died\n{Tail(Worker.Output)}");
        using var health = await Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    public static string Tail(string text, int chars = 4000) => text.Length <= chars ? text : "…" + text[^chars..];

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (_worker is not null)
            await _worker.DisposeAsync();
        await ReleaseAsync();
        _repo?.Dispose();
        Dir.Dispose();
    }
}

/// <summary>A finished job as the API reports it: the record and every event of its one attempt.</summary>
public sealed record AgentRun(string Id, JsonElement Job, IReadOnlyList<JsonElement> Events)
{
    public string State => Job.GetProperty("state").GetString()!;

    /// <summary>The agent's output lines (stdout and stderr), in order.</summary>
    public IReadOnlyList<string> Lines =>
        [.. Events.Where(e => e.GetProperty("kind").GetString() == "log").Select(e => e.GetProperty("message").GetString() ?? "")];

    public bool Printed(string line) => Lines.Contains(line);

    /// <summary>The rest of each line that starts with <paramref name="prefix"/> and a space.</summary>
    public IReadOnlyList<string> Values(string prefix) =>
        [.. Lines.Where(l => l.StartsWith(prefix + " ", StringComparison.Ordinal)).Select(l => l[(prefix.Length + 1)..])];

    public string? Value(string prefix) => Values(prefix).FirstOrDefault();

    /// <summary>The result's <c>resources</c> block, when the worker recorded one.</summary>
    public JsonElement? Resources =>
        Job.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object && result.TryGetProperty("resources", out var resources)
            ? resources
            : null;

    /// <summary>For assertion messages: the state, error and the first lines of output.</summary>
    public override string ToString()
    {
        var error = Job.TryGetProperty("error", out var e) ? e.ToString() : "";
        var lines = Lines.Take(60).Select(l => l.Length > 300 ? l[..300] + "…" : l);
        return $"job {Id}: {State} {error}\n  {string.Join("\n  ", lines)}";
    }

    /// <summary>How <c>/health</c> answered while the job ran.</summary>
    public HealthSamples Health { get; init; } = new(0, TimeSpan.Zero, 0);

    /// <summary>Fails unless <c>/health</c> answered OK within 100 ms every time it was asked while the job ran.</summary>
    public void AssertHealthStayedFast() => Health.AssertFast($"job {Id} ran");

    /// <summary>Fails unless the agent got to the end of its script (so an attack test cannot pass because nothing ran).</summary>
    public void AssertFinished(string sentinel = "DONE") => Assert.True(Printed(sentinel), $"the agent never printed {sentinel}: {this}");
}

/// <summary>How often <c>/health</c> was asked, its slowest answer and how many answers were not 200 OK.</summary>
public sealed record HealthSamples(int Count, TimeSpan Slowest, int Failures)
{
    private static readonly TimeSpan Limit = TimeSpan.FromMilliseconds(100);

    /// <summary>Fails unless every answer was 200 OK within 100 ms; <paramref name="during"/> says when, for the message.</summary>
    public void AssertFast(string during)
    {
        Assert.True(Count > 0, $"/health was never asked while {during}");
        Assert.True(Failures == 0, $"/health failed {Failures} of {Count} times while {during}");
        Assert.True(Slowest < Limit, $"/health took {Slowest.TotalMilliseconds:0} ms (limit {Limit.TotalMilliseconds:0}) while {during}");
    }
}

/// <summary>
/// Asks a worker's <c>/health</c> every 50 ms until stopped, timing each answer. It runs on a thread of its own with
/// blocking calls, so what it times is the worker's answer, not how soon the test process's thread pool got to it.
/// </summary>
internal sealed class HealthWatch : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);
    private readonly HttpClient _client;
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;
    private HealthSamples _samples = new(0, TimeSpan.Zero, 0);

    public HealthWatch(int port)
    {
        _client = WorkerProcess.Client(port, apiKey: null);
        _client.Timeout = TimeSpan.FromSeconds(5);
        _thread = new Thread(Sample) { IsBackground = true, Name = "health watch" };
        _thread.Start();
    }

    private void Sample()
    {
        // Not counted: the first request opens this client's connection.
        Ask();
        var (count, slowest, failures) = (0, TimeSpan.Zero, 0);
        do
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            failures += Ask() ? 0 : 1;
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            count++;
        }
        while (!_stop.Wait(Interval));
        _samples = new HealthSamples(count, slowest, failures);
    }

    private bool Ask()
    {
        try
        {
            using var response = _client.Send(new HttpRequestMessage(HttpMethod.Get, "/health"));
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    public HealthSamples Stop()
    {
        _stop.Set();
        _thread.Join();
        return _samples;
    }

    public void Dispose()
    {
        _stop.Set();
        _thread.Join();
        _client.Dispose();
        _stop.Dispose();
    }
}
