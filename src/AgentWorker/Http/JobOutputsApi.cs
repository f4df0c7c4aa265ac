using AgentWorker.Configuration;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sinks;

namespace AgentWorker.Http;

/// <summary>What a job left behind: its run receipt, its artifacts (the diff among them) and its delivery log.</summary>
internal static class JobOutputsApi
{
    public static void MapJobOutputs(this IEndpointRouteBuilder app, WorkerConfig config)
    {
        var secured = app.MapGroup("/v1/jobs/{id}").RequireBearer(config.ApiKey).WithTags("jobs");
        secured.MapGet("/receipt", ReceiptAsync).WithSummary("Get the job's run receipt");
        secured.MapGet("/artifacts", ArtifactsAsync).WithSummary("List the job's stored artifacts");
        secured.MapGet("/artifacts/{**name}", ArtifactAsync).WithSummary("Download one stored artifact");
        secured.MapGet("/deliveries", DeliveriesAsync).WithSummary("List the job's webhook deliveries");
    }

    private static async Task<IResult> ReceiptAsync(IJobQueue queue, string id, CancellationToken cancellationToken) =>
        await queue.GetAsync(id, cancellationToken) switch
        {
            null => Problems.NotFound(id),
            { Result.Receipt: { } receipt } => TypedResults.Ok(receipt),
            var job => Problems.Create(StatusCodes.Status404NotFound, "No receipt", $"job '{id}' has no receipt: no run of its agent has finished (state {job.State.Name()})"),
        };

    private static async Task<IResult> ArtifactsAsync(IJobQueue queue, string id, CancellationToken cancellationToken) =>
        await queue.GetAsync(id, cancellationToken) is { } job ? TypedResults.Ok(new { items = job.Result?.Artifacts ?? [] }) : Problems.NotFound(id);

    private static async Task<IResult> ArtifactAsync(IJobQueue queue, ArtifactStore store, string id, string name, CancellationToken cancellationToken)
    {
        if (await queue.GetAsync(id, cancellationToken) is not { } job)
            return Problems.NotFound(id);
        // Only names the job's result lists are served; the path comes from the record, never from the URL.
        if (job.Result?.Artifacts.FirstOrDefault(a => a.Name == name) is not { } artifact)
            return Problems.Create(StatusCodes.Status404NotFound, "Artifact not found", $"job '{id}' has no artifact '{name}' (GET /v1/jobs/{id}/artifacts lists them)");
        if (store.Locate(artifact) is not { } path)
            return Problems.Create(StatusCodes.Status404NotFound, "Artifact not on this worker",
                $"artifact '{name}' of job '{id}' is not in this worker's data directory (kept by the worker {job.Result.Receipt?.Worker ?? "that ran it"})");
        var contentType = name == ArtifactStore.DiffName ? "text/x-diff" : "application/octet-stream";
        return TypedResults.PhysicalFile(path, contentType, Path.GetFileName(name));
    }

    private static async Task<IResult> DeliveriesAsync(IJobQueue queue, string id, CancellationToken cancellationToken)
    {
        if (await queue.GetAsync(id, cancellationToken) is null)
            return Problems.NotFound(id);
        var log = await DeliveryRecord.ReadLogAsync(queue, id, cancellationToken);
        return TypedResults.Ok(new { items = log.Select(l => new { at = l.At, l.Record.Sink, l.Record.Event, l.Record.DeliveryId, l.Record.Attempt, l.Record.Outcome, l.Record.Error, l.Record.RetryInSeconds }) });
    }
}
