using System.Net.Http.Headers;
using AgentWorker.Configuration;
using AgentWorker.Core.Queue;
using AgentWorker.Http;
using AgentWorker.Testing;
using Microsoft.AspNetCore.Builder;

namespace AgentWorker.Tests;

/// <summary>The real HTTP host (Kestrel on a loopback port, SQLite store in a temp dir) in this process.</summary>
internal sealed class ApiHost : IAsyncDisposable
{
    public const string ApiKey = "test-key-0123456789";

    private readonly TempDirectory _dir;
    private readonly WebApplication _app;

    private ApiHost(TempDirectory dir, WebApplication app, IJobQueue queue)
    {
        _dir = dir;
        _app = app;
        Queue = queue;
        Client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public HttpClient Client { get; }
    public IJobQueue Queue { get; }
    public string Directory => _dir.Path;

    /// <summary>Starts a host; <paramref name="flags"/> are settings by flag name, e.g. <c>["--rate-limit-per-minute"] = "0"</c>.</summary>
    public static async Task<ApiHost> StartAsync(Dictionary<string, string>? flags = null, bool runWorkers = false, string? agentsYaml = null)
    {
        var dir = new TempDirectory("aw-api");
        var settings = new Dictionary<string, string>
        {
            ["--data-dir"] = dir.Combine("data"),
            ["--work-dir"] = dir.Combine("work"),
            ["--port"] = "0",
            ["--host"] = "127.0.0.1",
            ["--api-key"] = ApiKey,
            ["--log-level"] = "warn",
        };
        if (agentsYaml is not null)
        {
            File.WriteAllText(dir.Combine("agents.yaml"), agentsYaml);
            settings["--agents"] = dir.Combine("agents.yaml");
        }
        foreach (var (flag, value) in flags ?? [])
            settings[flag] = value;
        var config = WorkerConfig.Load(ConfigValues.Resolve(
            settings.ToDictionary(s => Settings.All.Single(x => x.Flag == s.Key), s => (string?)s.Value), _ => null));
        var queue = await WorkerServices.OpenQueueAsync(config, CancellationToken.None);
        var app = HttpHost.Build(config, queue, WorkerServices.LoadAgents(config), runWorkers);
        await app.StartAsync();
        return new ApiHost(dir, app, queue);
    }

    public async Task<long> StoredJobsAsync() => (await Queue.ListAsync(new JobQuery(Limit: 1), CancellationToken.None)).Total;

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await Queue.DisposeAsync();
        _dir.Dispose();
    }
}
