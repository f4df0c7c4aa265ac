using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using Xunit.Abstractions;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// Three real worker processes share one queue on the server scripts/test.sh started; one is kill -9'd while it has a
/// job running, about a third of the way through 2000 jobs. Every job must still end succeeded exactly once.
/// </summary>
[Collection(HeavyScenarios.Name)]
public sealed class SharedQueueKillTests(ITestOutputHelper output) : IDisposable
{
    private const int JobCount = 2000;
    // A guard against a hang, not a speed target (bench/ measures speed): 2000 no-op jobs share two cores with three
    // workers, PostgreSQL and the rest of the suite, and drain at 4-7 jobs/s on the reference VM.
    private static readonly TimeSpan DrainDeadline = TimeSpan.FromMinutes(8);

    private readonly NoOpJobs _jobs = new();

    [Fact]
    public Task Redis_ThreeWorkers_OneKilledMidRun_EveryJobSucceedsExactlyOnce() =>
        RunAsync("redis", new Dictionary<string, string> { ["REDIS_URL"] = ServerUrl("REDIS_URL"), ["QUEUE_NAME"] = $"aw_kill_{_jobs.Nonce}" });

    [Fact]
    public Task Postgres_ThreeWorkers_OneKilledMidRun_EveryJobSucceedsExactlyOnce() =>
        RunAsync("postgres", new Dictionary<string, string> { ["POSTGRES_URL"] = ServerUrl("POSTGRES_URL"), ["POSTGRES_SCHEMA"] = $"aw_kill_{_jobs.Nonce}" });

    private static string ServerUrl(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } url
            ? url
            : throw new InvalidOperationException($"{variable} is not set: run the tests with scripts/test.sh, which starts the server");

    private async Task RunAsync(string name, Dictionary<string, string> backend)
    {
        var port = WorkerProcess.FreePort();
        // The first serves HTTP (intake and the store's view) and works; the other two only work. One of those is killed.
        await using var serving = WorkerProcess.Start(_jobs.Environment(backend, port), "serve");
        using var client = WorkerProcess.Client(port, NoOpJobs.ApiKey);
        await serving.WaitReadyAsync(client);
        await using var survivor = WorkerProcess.Start(_jobs.Environment(backend), "run", "--timeout", "1");
        await using var victim = WorkerProcess.Start(_jobs.Environment(backend), "run", "--timeout", "1");
        var victimId = $"{Environment.MachineName}:{victim.Pid}";

        var clock = Stopwatch.StartNew();
        var ids = Enumerable.Range(1, JobCount).Select(n => $"kill-{n:D4}").ToList();
        var enqueued = _jobs.EnqueueAsync(client, ids);

        await Eventually.UntilAsync(() => NoOpJobs.HealthAsync(client), h => Succeeded(h) >= JobCount / 3, DrainDeadline, $"a third of the jobs succeeded\n{victim.Output}");
        // Killed at a moment the store shows it running a job, so that job's lease must expire and the job run again.
        await Eventually.UntilAsync(() => RunningOnAsync(client, victimId), running => running > 0, DrainDeadline, $"worker {victimId} running a job");
        victim.KillHard();
        var killedAt = clock.Elapsed;
        var doneAtKill = Succeeded(await NoOpJobs.HealthAsync(client));
        await enqueued;

        var health = await Eventually.UntilAsync(() => NoOpJobs.HealthAsync(client), h => Succeeded(h) == JobCount, DrainDeadline, $"all {JobCount} jobs succeeded\n{serving.Output}");
        var drained = clock.Elapsed;

        Assert.Equal(0, health.GetProperty("queueDepth").GetInt32() + health.GetProperty("running").GetInt32() + health.GetProperty("dead").GetInt32() + health.GetProperty("failed").GetInt32());
        var all = await NoOpJobs.ListAllAsync(client);
        var retried = _jobs.AssertEachSucceededOnce(all, ids);
        // The job(s) the victim was running when it died: given back after the lease, then run elsewhere.
        var takenBack = all.Count(job => job.GetProperty("attemptHistory").EnumerateArray()
            .Any(a => a.GetProperty("worker").GetString() == victimId && a.GetProperty("outcome").GetString() == "lease_expired"));
        Assert.True(takenBack >= 1, "the killed worker's running job was given back after its lease expired");
        Assert.False(serving.HasExited || survivor.HasExited, "the other workers kept running");
        output.WriteLine($"{name}: {JobCount} jobs on 3 workers; kill -9 of {victimId} after {killedAt.TotalSeconds:0.0}s at {doneAtKill} succeeded; "
            + $"{takenBack} job(s) taken back from it, {retried} job(s) with more than one attempt; all succeeded once after {drained.TotalSeconds:0.0}s");
    }

    private static int Succeeded(JsonElement health) => health.TryGetProperty("succeeded", out var succeeded) ? succeeded.GetInt32() : -1;

    /// <summary>How many jobs the store shows running under a lease of <paramref name="workerId"/>.</summary>
    private static async Task<int> RunningOnAsync(HttpClient client, string workerId)
    {
        var page = await client.GetFromJsonAsync<JsonElement>("/v1/jobs?state=running&limit=500");
        return page.GetProperty("items").EnumerateArray()
            .Count(job => job.GetProperty("attemptHistory").EnumerateArray().LastOrDefault() is { ValueKind: JsonValueKind.Object } last
                && last.GetProperty("worker").GetString() == workerId);
    }

    public void Dispose() => _jobs.Dispose();
}
