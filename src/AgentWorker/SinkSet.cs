using System.Runtime.CompilerServices;
using System.Text;
using AgentWorker.Configuration;
using AgentWorker.Core.Sinks;
using AgentWorker.Storage.Postgres;

namespace AgentWorker;

/// <summary>The sinks the configuration turns on: a webhook per URL and the results table. Disposing closes their connections.</summary>
internal sealed class SinkSet : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    public SinkSet(WorkerConfig config, ILoggerFactory loggers)
    {
        // Each kind is made in a method of its own, called only when configured, so a worker without webhooks or a
        // results table does not load System.Net.Http or the PostgreSQL sink (see Integrations.AddIntegrations).
        var sinks = new List<IJobSink>();
        if (config.WebhookUrls.Count > 0)
            sinks.AddRange(Webhooks(config));
        if (config.Results is var (table, connectionString))
            sinks.Add(Results(table, connectionString, loggers));
        Sinks = sinks;
    }

    public IReadOnlyList<IJobSink> Sinks { get; }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private IEnumerable<IJobSink> Webhooks(WorkerConfig config)
    {
        // Redirects are not followed: a signed delivery goes only where the operator pointed it.
        var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _owned.Add(http);
        var secret = Encoding.UTF8.GetBytes(config.WebhookSecret!);
        return config.WebhookUrls.Select(url => new WebhookSink(http, url, secret)).ToList();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private IJobSink Results(string table, string connectionString, ILoggerFactory loggers)
    {
        var results = PostgresResultsSink.Create(connectionString, table, loggers.CreateLogger<PostgresResultsSink>());
        _owned.Add(results);
        return results;
    }

    public void Dispose()
    {
        foreach (var owned in _owned)
            owned.Dispose();
    }
}
