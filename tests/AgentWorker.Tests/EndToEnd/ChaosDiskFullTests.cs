using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using Xunit.Abstractions;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// The chaos suite's full disk: a real worker whose WORK_DIR is a small tmpfs of the test's own. While the tmpfs is
/// full every job ends (no crash, no hang) with an error naming WORK_DIR and the full device; once space is back the
/// same worker runs jobs again. The agents run in the sandbox (bubblewrap), as in production.
/// </summary>
[Collection(HeavyScenarios.Name)]
public sealed class ChaosDiskFullTests(ITestOutputHelper output) : IDisposable
{
    private const int JobsPerPhase = 5;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly NoOpJobs _jobs = new();

    [Fact]
    public async Task WorkDirFull_JobsFailNamingTheCause_WorkerRecoversOnceSpaceIsBack_NothingLeftBehind()
    {
        using var disk = TmpfsMount.Create(megabytes: 16);
        var environment = _jobs.Environment(new Dictionary<string, string> { ["AGENT_WORKER_BACKEND"] = "sqlite" }, WorkerProcess.FreePort(), "info");
        environment["WORK_DIR"] = disk.Path;
        environment["SANDBOX"] = "bwrap";
        var port = int.Parse(environment["PORT"], System.Globalization.CultureInfo.InvariantCulture);
        await using var worker = WorkerProcess.Start(environment, "serve");
        using var client = WorkerProcess.Client(port, NoOpJobs.ApiKey);
        await worker.WaitReadyAsync(client);
        var clock = Stopwatch.StartNew();

        await RunPhaseAsync(client, worker, "before", "succeeded");
        var filled = disk.Fill();
        var full = await RunPhaseAsync(client, worker, "full", "dead");
        disk.Free();
        await RunPhaseAsync(client, worker, "after", "succeeded");

        foreach (var job in full)
        {
            var error = job.GetProperty("error").GetString();
            Assert.StartsWith($"workspace: no space left on the device of WORK_DIR {disk.Path}: ", error, StringComparison.Ordinal);
            Assert.Equal("error", job.GetProperty("attemptHistory")[0].GetProperty("outcome").GetString());
        }
        Assert.False(worker.HasExited, $"the worker exited:\n{worker.Output}");
        Assert.Equal("ok", (await NoOpJobs.HealthAsync(client)).GetProperty("status").GetString());
        Assert.Empty(disk.Entries());
        Assert.Empty(Processes.WithArgument(_jobs.Nonce));
        output.WriteLine($"WORK_DIR on a 16 MiB tmpfs: {JobsPerPhase} sandboxed jobs succeeded, then {filled / (1024 * 1024)} MiB filler → {JobsPerPhase} jobs dead with "
            + $"\"{full[0].GetProperty("error").GetString()![..80]}…\", space back → {JobsPerPhase} succeeded on the same worker; {clock.Elapsed.TotalSeconds:0.0}s");
    }

    /// <summary>Enqueues a few sandboxed jobs and waits until each has ended in <paramref name="state"/>.</summary>
    private async Task<List<JsonElement>> RunPhaseAsync(HttpClient client, WorkerProcess worker, string phase, string state)
    {
        var ids = Enumerable.Range(1, JobsPerPhase).Select(n => $"{phase}-{n}").ToList();
        foreach (var id in ids)
        {
            using var response = await client.PostAsync("/v1/jobs", _jobs.JobFor(id, "contained", maxAttempts: 1));
            Assert.True(response.IsSuccessStatusCode, $"job {id}: {(int)response.StatusCode}");
        }
        var jobs = new List<JsonElement>();
        foreach (var id in ids)
        {
            jobs.Add(await Eventually.UntilAsync(() => client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}"),
                job => job.GetProperty("state").GetString() is "succeeded" or "dead" or "failed" or "cancelled" or "timed_out", Deadline, $"job {id} ended\n{worker.Output}"));
            Assert.True(jobs[^1].GetProperty("state").GetString() == state, $"job {id} ended {jobs[^1]}, not {state}");
        }
        return jobs;
    }

    public void Dispose() => _jobs.Dispose();
}
