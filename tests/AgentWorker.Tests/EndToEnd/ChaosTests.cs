using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using Xunit.Abstractions;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// The chaos suite. Per backend: 1000 short jobs on three real `serve` processes sharing one queue while a driver
/// kill -9s a random one of them 20 times and starts it again on its port; Redis and PostgreSQL (a private server per
/// test) are also restarted twice. Afterwards every job must have succeeded exactly once, counted both in the store and
/// by the agent's own side effect, with no workspace and no agent process left. The agent writes its side effect
/// outside its workspace, so these runs use SANDBOX=none (a sandboxed agent dying with a killed worker is
/// PipelineEndToEndTests.WorkerKilledMidJob_SandboxedAgentDiesWithIt; sandboxing 3000 jobs would cost half as much again).
/// </summary>
[Collection(HeavyScenarios.Name)]
public sealed class ChaosTests(ITestOutputHelper output) : IDisposable
{
    private const int JobCount = 1000;
    private const int Kills = 20;
    private const int FleetSize = 3;
    private static readonly int[] ServerRestartAfterKill = [7, 14];
    // A guard against a hang, not a speed target (bench/ measures speed).
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(6);
    private static readonly TimeSpan CleanupDeadline = TimeSpan.FromSeconds(15);

    // The agent stays a moment after its side effect, so kills find agents running and their side effects already done.
    private readonly NoOpJobs _jobs = new(agentSeconds: 0.2);
    private readonly Random _random = new();

    [Fact]
    public Task Sqlite_ThreeWorkers_TwentyKills_EveryJobSucceedsExactlyOnce_NothingLeftBehind() =>
        RunAsync("sqlite", new Dictionary<string, string> { ["AGENT_WORKER_BACKEND"] = "sqlite" }, server: null);

    [Fact]
    public async Task Redis_ThreeWorkers_TwentyKills_TwoServerRestarts_EveryJobSucceedsExactlyOnce_NothingLeftBehind()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await RunAsync("redis", new Dictionary<string, string> { ["REDIS_URL"] = redis.Url, ["QUEUE_NAME"] = "chaos" }, (redis.StopAsync, redis.StartAgainAsync));
    }

    [Fact]
    public async Task Postgres_ThreeWorkers_TwentyKills_TwoServerRestarts_EveryJobSucceedsExactlyOnce_NothingLeftBehind()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await RunAsync("postgres", new Dictionary<string, string> { ["POSTGRES_URL"] = postgres.Url }, (postgres.StopAsync, postgres.StartAgainAsync));
    }

    private async Task RunAsync(string name, Dictionary<string, string> backend, (Func<Task> Stop, Func<Task> Start)? server)
    {
        var clock = Stopwatch.StartNew();
        await using var fleet = new Fleet(_jobs, backend);
        await fleet.StartAllAsync();
        var ids = Enumerable.Range(1, JobCount).Select(n => $"chaos-{n:D4}").ToList();
        await _jobs.EnqueueAsync(fleet.Client, ids);

        var killedAt = new List<int>();
        var restarts = 0;
        for (var kill = 1; kill <= Kills; kill++)
        {
            // Kills are spread over the run: the k-th waits for its share of progress, then a random moment more.
            var progress = kill * JobCount / (Kills + 2);
            killedAt.Add(await Eventually.UntilAsync(() => SucceededAsync(fleet.Client), n => n >= progress, Deadline, $"{progress} jobs succeeded before kill {kill}\n{fleet.Output}"));
            await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(0, 400)));
            var victim = _random.Next(FleetSize);
            await fleet.KillAsync(victim);
            fleet.Start(victim);
            await fleet.WaitReadyAsync(victim);
            if (server is { } restart && ServerRestartAfterKill.Contains(kill))
            {
                await restart.Stop();
                await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(500, 1500)));
                await restart.Start();
                restarts++;
            }
        }

        var health = await Eventually.UntilAsync(() => HealthAsync(fleet.Client), h => Count(h, "succeeded") == JobCount, Deadline, $"all {JobCount} jobs succeeded\n{fleet.Output}");
        var drained = clock.Elapsed;

        foreach (var state in new[] { "queueDepth", "running", "failed", "dead", "cancelled", "timedOut" })
            Assert.True(Count(health, state) == 0, $"{state}: {health}");
        var all = await NoOpJobs.ListAllAsync(fleet.Client);
        var retried = _jobs.AssertEachSucceededOnce(all, ids);
        // Attempts cut short by a kill (or by a lease lost in an outage) and given back after their lease expired.
        var takenBack = all.Sum(job => job.GetProperty("attemptHistory").EnumerateArray().Count(a => a.GetProperty("outcome").GetString() == "lease_expired"));
        Assert.True(takenBack >= 1, "some kill cut a job short and it was given back after its lease");
        Assert.True(fleet.AllRunning, $"a worker exited by itself\n{fleet.Output}");
        // Killed workers' workspaces are swept by the next start and their orphaned agents killed by it.
        await Eventually.UntilAsync(() => !Directory.Exists(_jobs.WorkDir) || !Directory.EnumerateFileSystemEntries(_jobs.WorkDir).Any(), CleanupDeadline,
            $"no workspace left in {_jobs.WorkDir}: {string.Join(", ", Directory.Exists(_jobs.WorkDir) ? Directory.EnumerateFileSystemEntries(_jobs.WorkDir) : [])}");
        await Eventually.UntilAsync(() => Processes.WithArgument(_jobs.Nonce).Count == 0, CleanupDeadline, "no agent process left");

        output.WriteLine($"{name}: {JobCount} jobs on {FleetSize} worker processes; {Kills} kill -9 survived (at {killedAt[0]}..{killedAt[^1]} succeeded), "
            + $"{restarts} server restart(s); {takenBack} attempt(s) cut short and given back, {retried} job(s) with more than one attempt; "
            + $"every job succeeded exactly once (store and side effects) after {drained.TotalSeconds:0.0}s; no workspace or agent left");
    }

    private static async Task<JsonElement?> HealthAsync(HttpClient client)
    {
        try
        {
            // 503 while the backend is away: its body has no counts, which reads as not yet.
            using var response = await client.GetAsync("/health");
            return await response.Content.ReadFromJsonAsync<JsonElement>();
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException)
        {
            return null;
        }
    }

    private static async Task<int> SucceededAsync(HttpClient client) => Count(await HealthAsync(client), "succeeded");

    private static int Count(JsonElement? health, string field) =>
        health is { } h && h.TryGetProperty(field, out var value) ? value.GetInt32() : -1;

    public void Dispose() => _jobs.Dispose();

    /// <summary>
    /// <see cref="FleetSize"/> `serve` processes, each on a port of its own, sharing one queue. The driver kills and starts
    /// them one at a time, so the test talks to the first that is up; killed ones are kept for their output.
    /// </summary>
    private sealed class Fleet : IAsyncDisposable
    {
        private readonly NoOpJobs _jobs;
        private readonly Dictionary<string, string> _backend;
        private readonly int[] _ports = [.. Enumerable.Range(0, FleetSize).Select(_ => WorkerProcess.FreePort())];
        private readonly WorkerProcess?[] _workers = new WorkerProcess?[FleetSize];
        private readonly HttpClient[] _clients;
        private readonly List<WorkerProcess> _killed = [];

        public Fleet(NoOpJobs jobs, Dictionary<string, string> backend)
        {
            (_jobs, _backend) = (jobs, backend);
            _clients = [.. _ports.Select(port => WorkerProcess.Client(port, NoOpJobs.ApiKey))];
        }

        public HttpClient Client => _clients[Array.FindIndex(_workers, worker => worker is not null)];

        public bool AllRunning => _workers.All(worker => worker is { HasExited: false });

        public string Output => string.Join("\n", _workers.Concat(_killed).OfType<WorkerProcess>().Select(worker => $"--- worker {worker.Pid}:\n{Tail(worker.Output)}"));

        public async Task StartAllAsync()
        {
            for (var i = 0; i < FleetSize; i++)
                Start(i);
            for (var i = 0; i < FleetSize; i++)
                await WaitReadyAsync(i);
        }

        public void Start(int i) => _workers[i] = WorkerProcess.Start(_jobs.Environment(_backend, _ports[i]), "serve");

        public Task WaitReadyAsync(int i) => _workers[i]!.WaitReadyAsync(_clients[i]);

        public async Task KillAsync(int i)
        {
            var worker = _workers[i]!;
            _workers[i] = null;
            worker.KillHard();
            await worker.WaitForExitAsync(TimeSpan.FromSeconds(10));
            _killed.Add(worker);
        }

        private static string Tail(string text) => text.Length <= 4000 ? text : text[^4000..];

        public async ValueTask DisposeAsync()
        {
            foreach (var worker in _workers.Concat(_killed).OfType<WorkerProcess>())
                await worker.DisposeAsync();
            foreach (var client in _clients)
                client.Dispose();
        }
    }
}
