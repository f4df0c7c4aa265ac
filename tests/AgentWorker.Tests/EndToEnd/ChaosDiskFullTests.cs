using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;
using Xunit.Abstractions;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// The chaos suite's full disk: a real worker whose WORK_DIR, or whose data directory (the SQLite queue), is a small
/// tmpfs of the test's own. While the tmpfs is full, jobs end (no crash, no hang) with an error naming WORK_DIR and the
/// full device, or intake answers 503 naming the full disk and nothing accepted is lost; once space is back the same
/// worker runs jobs again. The agents run in the sandbox (bubblewrap), as in production.
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
        var (worker, client) = await ServeAsync(environment => environment["WORK_DIR"] = disk.Path);
        await using (worker)
        using (client)
        {
            var clock = Stopwatch.StartNew();

            await RunPhaseAsync(client, worker, "before", "succeeded");
            var filled = disk.Fill();
            var full = await RunPhaseAsync(client, worker, "full", "dead");
            disk.Free();
            await RunPhaseAsync(client, worker, "after", "succeeded");

            foreach (var job in full)
            {
                var error = job.GetProperty("error").GetString();
                Assert.Equal($"workspace: {WorkspaceManager.OutOfSpace}", error);
                Assert.Contains($"no space left on the device of WORK_DIR {disk.Path}", worker.Output, StringComparison.Ordinal);
                Assert.Equal("error", job.GetProperty("attemptHistory")[0].GetProperty("outcome").GetString());
            }
            Assert.False(worker.HasExited, $"the worker exited:\n{worker.Output}");
            Assert.Equal("ok", (await NoOpJobs.HealthAsync(client)).GetProperty("status").GetString());
            Assert.Empty(disk.Entries());
            Assert.Empty(Processes.WithArgument(_jobs.Nonce));
            output.WriteLine($"WORK_DIR on a 16 MiB tmpfs: {JobsPerPhase} sandboxed jobs succeeded, then {filled / (1024 * 1024)} MiB filler → {JobsPerPhase} jobs dead with "
                + $"\"{full[0].GetProperty("error").GetString()}\", space back → {JobsPerPhase} succeeded on the same worker; {clock.Elapsed.TotalSeconds:0.0}s");
        }
    }

    [Fact]
    public async Task DataDirFull_IntakeAnswers503NamingTheCause_NothingLost_JobsRunOnceSpaceIsBack()
    {
        using var disk = TmpfsMount.Create(megabytes: 16);
        var (worker, client) = await ServeAsync(environment => environment["AGENT_WORKER_DATA"] = disk.Path);
        await using (worker)
        using (client)
        {
            await RunPhaseAsync(client, worker, "before", "succeeded");
            disk.Fill();

            // Sent until one is refused: a write may still fit in a page the SQLite WAL already has.
            var accepted = new List<string>();
            (string Id, HttpStatusCode Status, string? Type, string? RetryAfter, JsonElement Body)? refused = null;
            for (var n = 1; n <= 20 && refused is null; n++)
            {
                var id = $"full-{n}";
                using var response = await client.PostAsync("/v1/jobs", _jobs.JobFor(id, "contained", maxAttempts: 1));
                if (response.StatusCode == HttpStatusCode.Accepted)
                    accepted.Add(id);
                else
                    refused = (id, response.StatusCode, response.Content.Headers.ContentType?.MediaType, response.Headers.RetryAfter?.ToString(), await response.Content.ReadFromJsonAsync<JsonElement>());
            }

            Assert.NotNull(refused);
            var (refusedId, status, type, retryAfter, body) = refused.Value;
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{(int)status} {body}");
            Assert.Equal("application/problem+json", type);
            Assert.False(string.IsNullOrEmpty(retryAfter));
            Assert.Contains("database or disk is full", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.False(worker.HasExited, $"the worker exited:\n{worker.Output}");

            disk.Free();
            // The refused job sent again, as a client told to retry does; what was accepted while full is not lost.
            await EnqueueAsync(client, [refusedId]);
            await WaitEndedAsync(client, worker, [.. accepted, refusedId], "succeeded");
            await RunPhaseAsync(client, worker, "after", "succeeded");
            Assert.False(worker.HasExited, $"the worker exited:\n{worker.Output}");
            Assert.Contains("Queue backend sqlite unreachable: SQLite Error 13", worker.Output, StringComparison.Ordinal);
            Assert.Contains("Queue backend sqlite reachable again", worker.Output, StringComparison.Ordinal);
            output.WriteLine($"data dir on a 16 MiB tmpfs, filled: {accepted.Count} job(s) still fitted, the next answered 503 \"{body.GetProperty("detail").GetString()![..90]}…\"; "
                + $"space back → all {accepted.Count + 1} and {JobsPerPhase} new jobs succeeded on the same worker");
        }
    }

    private async Task<(WorkerProcess Worker, HttpClient Client)> ServeAsync(Action<Dictionary<string, string>> adjust)
    {
        var port = WorkerProcess.FreePort();
        var environment = _jobs.Environment(new Dictionary<string, string> { ["AGENT_WORKER_BACKEND"] = "sqlite" }, port, "info");
        environment["SANDBOX"] = "bwrap";
        adjust(environment);
        var worker = WorkerProcess.Start(environment, "serve");
        var client = WorkerProcess.Client(port, NoOpJobs.ApiKey);
        await worker.WaitReadyAsync(client);
        return (worker, client);
    }

    /// <summary>Enqueues a few sandboxed jobs and waits until each has ended in <paramref name="state"/>.</summary>
    private async Task<List<JsonElement>> RunPhaseAsync(HttpClient client, WorkerProcess worker, string phase, string state)
    {
        var ids = Enumerable.Range(1, JobsPerPhase).Select(n => $"{phase}-{n}").ToList();
        await EnqueueAsync(client, ids);
        return await WaitEndedAsync(client, worker, ids, state);
    }

    private async Task EnqueueAsync(HttpClient client, IEnumerable<string> ids)
    {
        foreach (var id in ids)
        {
            using var response = await client.PostAsync("/v1/jobs", _jobs.JobFor(id, "contained", maxAttempts: 1));
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"job {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static async Task<List<JsonElement>> WaitEndedAsync(HttpClient client, WorkerProcess worker, IEnumerable<string> ids, string state)
    {
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
