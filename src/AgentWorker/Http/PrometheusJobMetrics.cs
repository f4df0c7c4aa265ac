using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using Prometheus;

namespace AgentWorker.Http;

/// <summary>
/// Attempt counters and durations of this process, on the host's own registry (hosts in one process stay apart).
/// The collectors are made by the first job or the first scrape, whichever comes first (a scrape shows the same
/// families either way): prometheus-net compiles its name-checking regular expressions and loads System.Net.Http when
/// the first collector is made, 1 MB of idle `serve` RSS (bench/README.md "Startup").
/// </summary>
internal sealed class PrometheusJobMetrics : IJobMetrics
{
    private readonly Lazy<Collectors> _collectors;

    public PrometheusJobMetrics(CollectorRegistry registry)
    {
        _collectors = new Lazy<Collectors>(() => new Collectors(Metrics.WithCustomRegistry(registry)));
        registry.AddBeforeCollectCallback(() => _ = _collectors.Value);
    }

    public void Started(string agent) => _collectors.Value.Running.Inc();

    public void Finished(string agent, JobState? state, TimeSpan duration)
    {
        var collectors = _collectors.Value;
        collectors.Running.Dec();
        var name = state?.Name() ?? "lease_lost";
        collectors.Finished.WithLabels(name, agent).Inc();
        collectors.Duration.WithLabels(name).Observe(duration.TotalSeconds);
    }

    public void Egress(string decision) => _collectors.Value.Egress.WithLabels(decision).Inc();

    public void ModelCall(string agent, ModelCall call)
    {
        var collectors = _collectors.Value;
        collectors.ModelRequests.WithLabels(agent, call.Model).Inc();
        if (call.Usage is { } usage)
        {
            collectors.ModelTokens.WithLabels(agent, call.Model, "input").Inc(usage.InputTokens);
            collectors.ModelTokens.WithLabels(agent, call.Model, "output").Inc(usage.OutputTokens);
            collectors.ModelTokens.WithLabels(agent, call.Model, "cached").Inc(usage.CachedTokens);
        }
        if (call.CostUsd is { } cost)
            collectors.ModelCost.WithLabels(agent, call.Model).Inc((double)cost);
    }

    private sealed class Collectors(IMetricFactory factory)
    {
        public Counter ModelRequests { get; } = factory.CreateCounter("agent_worker_model_requests_total", "Requests agents sent through the model gateway, by agent and model.", ["agent", "model"]);

        public Counter ModelTokens { get; } = factory.CreateCounter("agent_worker_model_tokens_total", "Tokens the model vendors reported through the gateway, by agent, model and kind (input, output, cached; input includes cached).", ["agent", "model", "kind"]);

        public Counter ModelCost { get; } = factory.CreateCounter("agent_worker_model_cost_usd_total", "Estimated cost in US dollars of the gateway's requests, by agent and model (MODEL_PRICES; unpriced models add nothing).", ["agent", "model"]);

        public Counter Egress { get; } = factory.CreateCounter("agent_worker_egress_decisions_total", "Connections agents asked their egress proxy for, by decision (allowed, refused).", ["decision"]);

        public Counter Finished { get; } = factory.CreateCounter("agent_worker_jobs_finished_total", "Job attempts finished by this process, by resulting state and agent.", ["state", "agent"]);

        public Histogram Duration { get; } = factory.CreateHistogram("agent_worker_job_duration_seconds", "Wall time of job attempts in this process, by resulting state.",
            new HistogramConfiguration { LabelNames = ["state"], Buckets = Histogram.ExponentialBuckets(0.05, 2, 16) });

        public Gauge Running { get; } = factory.CreateGauge("agent_worker_jobs_running", "Job attempts running in this process.");
    }
}
