using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;

namespace AgentWorker.Core.Sinks;

/// <summary>
/// One state change of a job, as sinks receive it: <c>job.queued</c>, <c>job.running</c>, <c>job.succeeded</c>, … with
/// the job as stored at that moment. <see cref="DeliveryId"/> is the same on every try, so receivers can drop repeats.
/// </summary>
public sealed record JobNotice(string Event, string DeliveryId, DateTimeOffset At, JobRecord Job)
{
    public static JobNotice For(JobRecord job, DateTimeOffset at) => new($"job.{job.State.Name()}", Ulid.NewUlid().ToString(), at, job);

    /// <summary>The JSON body webhooks send: <c>{event, deliveryId, at, job}</c>, the job as <c>GET /v1/jobs/{id}</c> shows it.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(new { @event = Event, deliveryId = DeliveryId, at = At, job = JobView.From(Job) }, ResultJson.Options);
}
