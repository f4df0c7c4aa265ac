using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sinks;
using Microsoft.AspNetCore.Mvc;

namespace AgentWorker.Http;

/// <summary>The job routes: intake (three shapes), list, get, logs (with live follow), cancel, retry.</summary>
internal static class JobsApi
{
    public const string IntakePolicy = "intake";
    private static readonly TimeSpan FollowPoll = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan FollowKeepAlive = TimeSpan.FromSeconds(15);

    public static void MapJobs(this IEndpointRouteBuilder app, WorkerConfig config)
    {
        var secured = app.MapGroup("").RequireBearer(config.ApiKey).WithTags("jobs");
        foreach (var route in new[] { "/v1/jobs", "/queue", "/api/tasks" })
        {
            secured.MapPost(route, SubmitAsync).RequireRateLimiting(IntakePolicy)
                .WithSummary(route == "/v1/jobs" ? "Queue a job" : $"Queue a job ({route}, seed-compatible route)")
                .WithDescription("Accepts the three job shapes (native, seed /queue, seed reliable-queue); the same id again answers with the existing job.")
                .WithMetadata(ApiDocs.JobIntake)
                .Produces<SubmitAnswer>(StatusCodes.Status202Accepted)
                .ProducesValidationProblem()
                .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
                .ProducesProblem(StatusCodes.Status429TooManyRequests)
                .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        }
        secured.MapGet("/v1/jobs", ListAsync)
            .WithSummary("List jobs, newest first").Produces<JobPageView>().ProducesValidationProblem();
        secured.MapGet("/v1/jobs/{id}", GetAsync)
            .WithSummary("Get a job with its attempts and result").Produces<JobView>().ProducesProblem(StatusCodes.Status404NotFound);
        secured.MapGet("/v1/jobs/{id}/logs", LogsAsync)
            .WithSummary("Read a job's events, or follow them live")
            .WithDescription("With follow=true the answer is text/event-stream: one event per stored event (id = seq, event = kind), then `event: end` once the job has ended. Honours Last-Event-ID.")
            .Produces<EventPage>(StatusCodes.Status200OK, "application/json", "text/event-stream").ProducesProblem(StatusCodes.Status404NotFound);
        secured.MapPost("/v1/jobs/{id}/cancel", CancelAsync)
            .WithSummary("Cancel a job").Produces<CancelAnswer>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        secured.MapPost("/v1/jobs/{id}/retry", RetryAsync)
            .WithSummary("Queue a failed, dead, cancelled or timed-out job again").Produces<RetryAnswer>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
    }

    private static async Task<IResult> SubmitAsync(HttpContext http, IJobQueue queue, AgentRegistry agents, WorkerConfig config, BackendRetry retry, JobNotifier notifier, CancellationToken cancellationToken)
    {
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: cancellationToken);
        }
        catch (JsonException e)
        {
            return Problems.Invalid(new Dictionary<string, string[]> { ["body"] = [$"malformed JSON: {e.Message}"] });
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return Problems.Create(StatusCodes.Status413PayloadTooLarge, "Request body too large", $"the limit is {config.MaxBodyBytes} bytes (MAX_BODY_BYTES)");
        }
        catch (BadHttpRequestException e)
        {
            // The body broke off before its declared length or its chunks were malformed: the client's fault, not a server error.
            return Problems.Create(e.StatusCode, "Unreadable request body", e.Message);
        }

        var parsed = JobRequestParser.Parse(body, agents, config.Pipeline.DefaultAgent, () => Ulid.NewUlid().ToString());
        if (parsed.Job is not { } job)
            return Problems.Invalid(parsed.Errors);

        // A blip of the backend is ridden out here; a longer outage is answered 503 (BackendUnavailableHandler).
        // Trying again is safe: the job's id is fixed by now, and a repeated id is stored once.
        return await retry.QuicklyAsync(token => StoreAsync(http, queue, config, notifier, job, token), cancellationToken);
    }

    private static async Task<IResult> StoreAsync(HttpContext http, IJobQueue queue, WorkerConfig config, JobNotifier notifier, JobSpec job, CancellationToken cancellationToken)
    {
        // A repeated id is answered with the job it names, even when the queue is full.
        if (await queue.GetAsync(job.Id, cancellationToken) is { } existing)
            return Accepted(existing, created: false);
        if (config.MaxQueueDepth > 0 && (await queue.GetStatsAsync(cancellationToken)).Depth >= config.MaxQueueDepth)
        {
            http.Response.Headers.RetryAfter = "30";
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "Queue full", $"{config.MaxQueueDepth} jobs are waiting (MAX_QUEUE_DEPTH); try again later");
        }
        var result = await queue.EnqueueAsync(job, cancellationToken);
        if (result.Created)
            notifier.Publish(result.Job);
        return Accepted(result.Job, result.Created);
    }

    private static IResult Accepted(JobRecord job, bool created) =>
        TypedResults.Accepted($"/v1/jobs/{Uri.EscapeDataString(job.Id)}", new SubmitAnswer(job.Id, job.State, created));

    private static async Task<IResult> ListAsync(IJobQueue queue, string? state, string? agent, string? repo, int? limit, int? offset, CancellationToken cancellationToken)
    {
        JobState? filter = null;
        if (state is not null)
        {
            if (!JobStates.TryParse(state, out var parsed))
                return Problems.Invalid(new Dictionary<string, string[]> { ["state"] = [$"unknown state '{state}'"] });
            filter = parsed;
        }
        if (limit is < 1 or > 500)
            return Problems.Invalid(new Dictionary<string, string[]> { ["limit"] = ["must be from 1 to 500"] });
        if (offset is < 0)
            return Problems.Invalid(new Dictionary<string, string[]> { ["offset"] = ["must not be negative"] });
        var page = await queue.ListAsync(new JobQuery(filter, agent, limit ?? 50, offset ?? 0, string.IsNullOrEmpty(repo) ? null : repo), cancellationToken);
        return TypedResults.Ok(new JobPageView(page.Items.Select(JobView.From), page.Total, limit ?? 50, offset ?? 0));
    }

    private static async Task<IResult> GetAsync(IJobQueue queue, string id, CancellationToken cancellationToken) =>
        await queue.GetAsync(id, cancellationToken) is { } job ? TypedResults.Ok(JobView.From(job)) : Problems.NotFound(id);

    private static async Task<IResult> CancelAsync(IJobQueue queue, JobNotifier notifier, string id, CancellationToken cancellationToken)
    {
        var outcome = await queue.CancelAsync(id, "cancelled via API", cancellationToken);
        // A running job's worker reports its end itself.
        if (outcome == CancelOutcome.Cancelled)
            await notifier.PublishCurrentAsync(id, cancellationToken);
        return outcome switch
        {
            CancelOutcome.NotFound => Problems.NotFound(id),
            CancelOutcome.AlreadyFinished => Problems.Create(StatusCodes.Status409Conflict, "Job already finished", $"job '{id}' has already ended"),
            _ => TypedResults.Accepted($"/v1/jobs/{Uri.EscapeDataString(id)}", new CancelAnswer(id, outcome == CancelOutcome.Cancelled ? "cancelled" : "cancel_requested")),
        };
    }

    private static async Task<IResult> RetryAsync(IJobQueue queue, JobNotifier notifier, string id, CancellationToken cancellationToken)
    {
        var outcome = await queue.RetryAsync(id, cancellationToken);
        if (outcome == RetryOutcome.Requeued)
            await notifier.PublishCurrentAsync(id, cancellationToken);
        return outcome switch
        {
            RetryOutcome.NotFound => Problems.NotFound(id),
            RetryOutcome.NotFinished => Problems.Create(StatusCodes.Status409Conflict, "Job not finished", $"job '{id}' is still queued or running"),
            RetryOutcome.AlreadySucceeded => Problems.Create(StatusCodes.Status409Conflict, "Job succeeded", $"job '{id}' succeeded; a succeeded job is not run again (enqueue a new id)"),
            _ => TypedResults.Accepted($"/v1/jobs/{Uri.EscapeDataString(id)}", new RetryAnswer(id, JobState.Queued)),
        };
    }

    private static async Task LogsAsync(HttpContext http, IJobQueue queue, string id, bool? follow, long? after, [FromHeader(Name = "Last-Event-ID")] long? lastEventId, CancellationToken cancellationToken)
    {
        if (await queue.GetAsync(id, cancellationToken) is null)
        {
            await Problems.NotFound(id).ExecuteAsync(http);
            return;
        }
        var cursor = lastEventId ?? after ?? 0;
        if (follow != true)
        {
            var events = await queue.ReadEventsAsync(id, cursor, 10_000, cancellationToken);
            await TypedResults.Ok(new EventPage(events, events.Count > 0 ? events[^1].Seq : cursor)).ExecuteAsync(http);
            return;
        }

        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        var sinceWrite = TimeProvider.System.GetTimestamp();
        while (!cancellationToken.IsCancellationRequested)
        {
            // Read the state before the events so the last events of a job that just ended are not missed.
            var job = await queue.GetAsync(id, cancellationToken);
            var events = await queue.ReadEventsAsync(id, cursor, 1_000, cancellationToken);
            foreach (var e in events)
            {
                await http.Response.WriteAsync($"id: {e.Seq}\nevent: {JsonSerializer.Serialize(e.Kind, ResultJson.Options).Trim('"')}\ndata: {JsonSerializer.Serialize(e, ResultJson.Options)}\n\n", cancellationToken);
                cursor = e.Seq;
            }
            if (events.Count > 0)
            {
                await http.Response.Body.FlushAsync(cancellationToken);
                sinceWrite = TimeProvider.System.GetTimestamp();
                continue;
            }
            if (job is null || job.State.IsTerminal())
            {
                await http.Response.WriteAsync($"event: end\ndata: {JsonSerializer.Serialize(new { state = job?.State }, ResultJson.Options)}\n\n", cancellationToken);
                return;
            }
            if (TimeProvider.System.GetElapsedTime(sinceWrite) > FollowKeepAlive)
            {
                await http.Response.WriteAsync(": keep-alive\n\n", cancellationToken);
                await http.Response.Body.FlushAsync(cancellationToken);
                sinceWrite = TimeProvider.System.GetTimestamp();
            }
            await Task.Delay(FollowPoll, cancellationToken);
        }
    }
}
