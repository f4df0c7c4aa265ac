using System.Diagnostics.Metrics;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Pipeline;

/// <summary>Job counters and durations as .NET metrics; the host exports them in Prometheus format.</summary>
public sealed class JobMetrics : IDisposable
{
    public const string MeterName = "AgentWorker";

    private readonly Meter _meter = new(MeterName);

    public Meter Meter => _meter;
    private readonly Counter<long> _finished;
    private readonly Histogram<double> _duration;
    private readonly UpDownCounter<long> _running;

    public JobMetrics()
    {
        _finished = _meter.CreateCounter<long>("agent_worker_jobs_finished", description: "Job attempts finished, by resulting state and agent.");
        _duration = _meter.CreateHistogram<double>("agent_worker_job_duration_seconds", "s", "Wall time of job attempts, by resulting state.");
        _running = _meter.CreateUpDownCounter<long>("agent_worker_jobs_running", description: "Job attempts running in this process.");
    }

    public void Started() => _running.Add(1);

    public void Finished(string agent, JobState state, TimeSpan duration)
    {
        _running.Add(-1);
        var tags = new KeyValuePair<string, object?>[] { new("state", state.Name()), new("agent", agent) };
        _finished.Add(1, tags);
        _duration.Record(duration.TotalSeconds, tags);
    }

    public void Dispose() => _meter.Dispose();
}
