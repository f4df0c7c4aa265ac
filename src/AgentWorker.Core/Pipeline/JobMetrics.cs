using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Pipeline;

/// <summary>What the pipeline reports about attempts; the host exports it (Prometheus for `serve`).</summary>
public interface IJobMetrics
{
    void Started(string agent);

    /// <summary><paramref name="state"/> is null when the lease was lost and the outcome belongs to another worker.</summary>
    void Finished(string agent, JobState? state, TimeSpan duration);

    /// <summary>One egress decision: <c>allowed</c> or <c>refused</c>.</summary>
    void Egress(string decision);

    /// <summary>One request an agent sent through the model gateway: its model, tokens and cost.</summary>
    void ModelCall(string agent, Gateway.ModelCall call);
}

/// <summary>For hosts without a metrics endpoint (`run`, `demo`).</summary>
public sealed class NoJobMetrics : IJobMetrics
{
    public void Started(string agent)
    {
    }

    public void Finished(string agent, JobState? state, TimeSpan duration)
    {
    }

    public void Egress(string decision)
    {
    }

    public void ModelCall(string agent, Gateway.ModelCall call)
    {
    }
}
