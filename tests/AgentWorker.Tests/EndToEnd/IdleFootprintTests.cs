using System.Globalization;
using AgentWorker.Testing;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// What a real `serve` on the default SQLite store maps: the backends, integrations and pages nobody configured or
/// asked for stay out of its memory (bench/README.md "Startup"), and come in once they are used.
/// </summary>
public sealed class IdleFootprintTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-idle");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Serve_OnTheDefaultStore_MapsNoOptionalComponent_UntilItsPageIsAskedFor()
    {
        var port = WorkerProcess.FreePort();
        await using var worker = WorkerProcess.Start(new Dictionary<string, string>(), "serve",
            "--port", port.ToString(CultureInfo.InvariantCulture), "--data-dir", _dir.Combine("data"), "--work-dir", _dir.Combine("work"));
        using var client = WorkerProcess.Client(port, apiKey: null);
        await worker.WaitReadyAsync(client);

        var idle = Mapped(worker.Pid);

        // Backends and integrations not configured: not even their assemblies.
        Assert.DoesNotContain("Npgsql.dll", idle);
        Assert.DoesNotContain("StackExchange.Redis.dll", idle);
        Assert.DoesNotContain("AWSSDK.S3.dll", idle);
        Assert.DoesNotContain("AgentWorker.Storage.Postgres.dll", idle);
        Assert.DoesNotContain("AgentWorker.Storage.Redis.dll", idle);
        Assert.DoesNotContain("AgentWorker.TasksPoller.dll", idle);
        Assert.DoesNotContain("System.Net.Http.dll", idle);
        // The dashboard's compression and the OpenAPI generator: only once asked for.
        Assert.DoesNotContain("System.IO.Compression.dll", idle);
        Assert.DoesNotContain("Microsoft.OpenApi.dll", idle);
        Assert.DoesNotContain("Microsoft.AspNetCore.Mvc.Core.dll", idle);

        Assert.True((await client.GetAsync("/")).IsSuccessStatusCode);
        Assert.True((await client.GetAsync("/openapi/v1.json")).IsSuccessStatusCode);
        Assert.Contains("agent_worker_backend_up 1", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        var used = Mapped(worker.Pid);
        Assert.Contains("System.IO.Compression.dll", used);
        Assert.Contains("Microsoft.OpenApi.dll", used);
    }

    /// <summary>File names of the assemblies and libraries mapped into process <paramref name="pid"/>.</summary>
    private static HashSet<string> Mapped(int pid) =>
        File.ReadLines($"/proc/{pid}/maps")
            .Select(line => line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length == 6 && fields[5].StartsWith('/'))
            .Select(fields => Path.GetFileName(fields[5]))
            .ToHashSet(StringComparer.Ordinal);
}
