using System.Text;
using AgentWorker.Configuration;
using AgentWorker.Core.Sinks;
using AgentWorker.Storage.Postgres;

namespace AgentWorker;

/// <summary>The sinks the configuration turns on: a webhook per URL and the results table. Disposing closes their connections.</summary>
internal sealed class SinkSet : IDisposable
{
    private readonly HttpClient? _http;
    private readonly PostgresResultsSink? _results;

    public SinkSet(WorkerConfig config, ILoggerFactory loggers)
    {
        var sinks = new List<IJobSink>();
        if (config.WebhookUrls.Count > 0)
        {
            // Redirects are not followed: a signed delivery goes only where the operator pointed it.
            _http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            var secret = Encoding.UTF8.GetBytes(config.WebhookSecret!);
            sinks.AddRange(config.WebhookUrls.Select(url => new WebhookSink(_http, url, secret)));
        }
        if (config.Results is var (table, connectionString))
        {
            _results = PostgresResultsSink.Create(connectionString, table, loggers.CreateLogger<PostgresResultsSink>());
            sinks.Add(_results);
        }
        Sinks = sinks;
    }

    public IReadOnlyList<IJobSink> Sinks { get; }

    public void Dispose()
    {
        _http?.Dispose();
        _results?.Dispose();
    }
}
