using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Queue;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Worker;

/// <summary>
/// Agent jobs that arrive over the link: validated like HTTP intake, enqueued on the worker's durable queue (the
/// task id is the job id unless the job names one), run by the worker slots like any job, and followed here:
/// log lines go up as output, progress and findings as progress, the final state and result as the task result.
/// A cancel becomes a queue cancel, which kills the agent's sandbox.
/// </summary>
internal sealed class AgentTasks(IJobQueue queue, AgentRegistry agents, PipelineOptions pipeline, TimeProvider time)
{
    private static readonly TimeSpan FollowPoll = TimeSpan.FromMilliseconds(200);

    public IEnumerable<string> Agents => agents.All.Select(a => a.Id).Order(StringComparer.Ordinal);

    public async Task<TaskResult> RunAsync(string taskId, AgentJob job, TaskOutput output, Func<string?> cancelReason, CancellationToken cancellationToken)
    {
        JsonNode? body;
        try
        {
            body = JsonNode.Parse(job.JobJson);
        }
        catch (JsonException e)
        {
            throw TaskRefusedException.Argument($"job_json: not JSON ({e.Message})");
        }
        var parsed = JobRequestParser.Parse(body, agents, pipeline.DefaultAgent, () => taskId);
        if (parsed.Job is not { } spec || parsed.Errors.Count > 0)
            throw TaskRefusedException.Argument(string.Join("; ", parsed.Errors.Select(e => $"job_json.{e.Key}: {string.Join(", ", e.Value)}")));

        var enqueued = await queue.EnqueueAsync(spec, cancellationToken).ConfigureAwait(false);
        var id = enqueued.Job.Id;
        await output.ProgressAsync(enqueued.Created ? $"job {id} queued" : $"job {id} already exists; following it").ConfigureAwait(false);

        var stdout = output.Lines(OutputStream.Stdout);
        var stderr = output.Lines(OutputStream.Stderr);
        var cancelSent = false;
        long cursor = 0;
        while (true)
        {
            if (cancellationToken.IsCancellationRequested && !cancelSent)
            {
                cancelSent = true;
                await queue.CancelAsync(id, cancelReason() ?? "cancelled by the orchestrator", CancellationToken.None).ConfigureAwait(false);
            }
            var events = await queue.ReadEventsAsync(id, cursor, 1000, CancellationToken.None).ConfigureAwait(false);
            foreach (var e in events)
            {
                cursor = e.Seq;
                if (e.Kind == JobEventKind.Log)
                    await (e.Stream == "stderr" ? stderr : stdout).AddAsync(e.Message).ConfigureAwait(false);
                else
                    await output.ProgressAsync($"{e.Kind.ToString().ToLowerInvariant()}: {e.Message}").ConfigureAwait(false);
            }
            await stdout.FlushAsync().ConfigureAwait(false);
            await stderr.FlushAsync().ConfigureAwait(false);
            var record = await queue.GetAsync(id, CancellationToken.None).ConfigureAwait(false);
            if (record is null)
                return new TaskResult { State = TaskState.Failed, Code = ErrorCode.Internal, Error = $"job {id} disappeared from the queue" };
            if (record.State.IsTerminal() && events.Count == 0)
                return Result(record);
            if (events.Count == 0)
            {
                // Waiting goes on through a cancel: the job's own end (cancelled) is what gets reported.
                try
                {
                    await Task.Delay(FollowPoll, time, cancelSent ? CancellationToken.None : cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }
    }

    private static TaskResult Result(JobRecord job)
    {
        var result = new TaskResult
        {
            State = job.State switch
            {
                JobState.Succeeded => TaskState.Succeeded,
                JobState.Cancelled => TaskState.Cancelled,
                JobState.TimedOut => TaskState.TimedOut,
                _ => TaskState.Failed,
            },
            Error = job.Error ?? "",
            Code = job.State switch
            {
                JobState.Succeeded => ErrorCode.None,
                JobState.Cancelled => ErrorCode.Cancelled,
                JobState.TimedOut => ErrorCode.Timeout,
                _ => ErrorCode.ToolFailed,
            },
        };
        if (job.Result?.ExitCode is { } exit)
            result.ExitCode = exit;
        result.Details["job_id"] = job.Id;
        result.Details["job_state"] = job.State.Name();
        if (job.Result is not null)
            result.Details["result_json"] = Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(job.Result, ResultJson.Options));
        return result;
    }
}
