using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using Prometheus;

namespace AgentWorker.Http;

/// <summary>Attempt counters and durations of this process, on the host's own registry (hosts in one process stay apart).</summary>
internal sealed class PrometheusJobMetrics : IJobMetrics
{
    private readonly Counter _finished;
    private readonly Histogram _duration;
    private readonly Gauge _running;

    public PrometheusJobMetrics(CollectorRegistry registry)
    {
        var factory = Metrics.WithCustomRegistry(registry);
        _finished = factory.CreateCounter("agent_worker_jobs_finished_total", "Job attempts finished by this process, by resulting state and agent.", "state", "agent");
        _duration = factory.CreateHistogram("agent_worker_job_duration_seconds", "Wall time of job attempts in this process, by resulting state.",
            new HistogramConfiguration { LabelNames = ["state"], Buckets = Histogram.ExponentialBuckets(0.05, 2, 16) });
        _running = factory.CreateGauge("agent_worker_jobs_running", "Job attempts running in this process.");
    }

    public void Started(string agent) => _running.Inc();

    public void Finished(string agent, JobState? state, TimeSpan duration)
    {
        _running.Dec();
        var name = state?.Name() ?? "lease_lost";
        _finished.WithLabels(name, agent).Inc();
        _duration.WithLabels(name).Observe(duration.TotalSeconds);
    }
}
