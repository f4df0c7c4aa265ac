using System.Collections.Concurrent;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Orchestration.Tools;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Orchestration.Worker;

/// <summary>
/// Runs the tasks the orchestrator sends, up to <see cref="OrchestratorLinkOptions.MaxConcurrentTasks"/> at once, each sending
/// status, output and exactly one result. Refusals (policy, disabled tool, bad argument, busy) are results too,
/// never exceptions on the stream. Cancels with force kill at once; without force the task gets the cancel grace.
/// </summary>
internal sealed partial class TaskDispatcher(OrchestratorLinkOptions options, ToolExecutor tools, AgentTasks agents, TimeProvider time, ILogger<TaskDispatcher> logger)
{
    private readonly ConcurrentDictionary<string, RunningTask> _running = new(StringComparer.Ordinal);
    private long _finished;
    private volatile bool _accepting;

    public IReadOnlyList<string> ActiveTaskIds => [.. _running.Keys];
    public long Finished => Interlocked.Read(ref _finished);

    /// <summary>Whether new tasks are taken (off while shutting down or between connections).</summary>
    public bool Accepting
    {
        get => _accepting;
        set => _accepting = value;
    }

    /// <summary>Starts <paramref name="task"/> in the background; its events go to <paramref name="send"/>.</summary>
    public void Start(TaskSpec task, Func<WorkerMessage, ValueTask> send)
    {
        var output = new TaskOutput(task.TaskId, send, options.ChunkBytes, time);
        if (task.TaskId.Length == 0)
        {
            LogNoTaskId(logger);
            return;
        }
        string? refusal = !_accepting ? "worker is shutting down"
            : _running.Count >= options.MaxConcurrentTasks ? $"worker is busy ({options.MaxConcurrentTasks} tasks running, --max-concurrent-tasks)"
            : null;
        var running = new RunningTask();
        if (refusal is null && !_running.TryAdd(task.TaskId, running))
            refusal = $"task {task.TaskId} is already running on this worker";
        if (refusal is not null)
        {
            LogRefused(logger, task.TaskId, refusal);
            _ = SendSafelyAsync(output, Refused(ErrorCode.Busy, refusal));
            return;
        }
        _ = Task.Run(() => RunAsync(task, running, output));
    }

    /// <summary>Cancels a running task; false when there is no such task (it may have just finished).</summary>
    public bool Cancel(Cancel cancel)
    {
        if (!_running.TryGetValue(cancel.TaskId, out var running))
        {
            LogCancelUnknown(logger, cancel.TaskId);
            return false;
        }
        LogCancelling(logger, cancel.TaskId, cancel.Force, cancel.Reason);
        running.Cancel(cancel.Reason.Length > 0 ? cancel.Reason : "cancelled by the orchestrator", cancel.Force ? TimeSpan.Zero : options.CancelGrace);
        return true;
    }

    /// <summary>Stops taking tasks and cancels the running ones (with the cancel grace unless <paramref name="force"/>); returns when all have ended.</summary>
    public async Task StopAllAsync(string reason, bool force)
    {
        _accepting = false;
        var running = _running.Values.ToList();
        foreach (var task in running)
            task.Cancel(reason, force ? TimeSpan.Zero : options.CancelGrace);
        await Task.WhenAll(running.Select(r => r.Done)).ConfigureAwait(false);
    }

    private async Task RunAsync(TaskSpec task, RunningTask running, TaskOutput output)
    {
        using var scope = TaskScope(logger, task.TaskId);
        var kind = task.KindCase == TaskSpec.KindOneofCase.Agent ? "agent" : task.KindCase == TaskSpec.KindOneofCase.Tool ? ToolExecutor.Name(task.Tool) : "none";
        LogStarted(logger, task.TaskId, kind);
        var started = time.GetTimestamp();
        TaskResult result;
        try
        {
            await output.StatusAsync(TaskState.Running, $"running {kind}").ConfigureAwait(false);
            result = task.KindCase switch
            {
                TaskSpec.KindOneofCase.Tool => await tools.RunAsync(task, output, () => running.Reason, running.Token).ConfigureAwait(false),
                TaskSpec.KindOneofCase.Agent => await agents.RunAsync(task.TaskId, task.Agent, output, () => running.Reason, running.Token).ConfigureAwait(false),
                _ => throw TaskRefusedException.Argument("task: carries neither a tool call nor an agent job"),
            };
        }
        catch (TaskRefusedException e)
        {
            LogRefused(logger, task.TaskId, e.Message);
            result = Refused(e.Code, e.Message);
        }
        catch (Exception e)
        {
            // A bug in one task must not take the link down; the orchestrator gets the failure.
            LogUnexpected(logger, e, task.TaskId);
            result = new TaskResult { State = TaskState.Failed, Code = ErrorCode.Internal, Error = $"internal error: {e.Message}" };
        }
        finally
        {
            _running.TryRemove(task.TaskId, out _);
        }
        Interlocked.Increment(ref _finished);
        await SendSafelyAsync(output, result).ConfigureAwait(false);
        LogFinished(logger, task.TaskId, result.State.ToString(), time.GetElapsedTime(started).TotalSeconds, result.Error);
        running.Finish();
    }

    private async Task SendSafelyAsync(TaskOutput output, TaskResult result)
    {
        try
        {
            await output.ResultAsync(result).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or System.Threading.Channels.ChannelClosedException)
        {
            LogResultLost(logger, output.TaskId);
        }
    }

    private static TaskResult Refused(ErrorCode code, string message) => new() { State = TaskState.Denied, Code = code, Error = message };

    /// <summary>A task in flight: its cancellation, why it was cancelled, and when it is done.</summary>
    private sealed class RunningTask
    {
        private readonly CancellationTokenSource _cancel = new();
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile string? _reason;

        public CancellationToken Token => _cancel.Token;
        public string? Reason => _reason;
        public Task Done => _done.Task;

        public void Cancel(string reason, TimeSpan grace)
        {
            _reason ??= reason;
            try
            {
                if (grace <= TimeSpan.Zero)
                    _cancel.Cancel();
                else
                    _cancel.CancelAfter(grace);
            }
            catch (ObjectDisposedException)
            {
                // Finished meanwhile.
            }
        }

        public void Finish()
        {
            _done.TrySetResult();
            _cancel.Dispose();
        }
    }

    private static readonly Func<ILogger, string, IDisposable?> TaskScope = LoggerMessage.DefineScope<string>("TaskId:{TaskId}");

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} started: {Kind}")]
    private static partial void LogStarted(ILogger logger, string taskId, string kind);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} ended {State} after {Seconds:0.000}s {Error}")]
    private static partial void LogFinished(ILogger logger, string taskId, string state, double seconds, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId} refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string taskId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cancelling task {TaskId} (force {Force}): {Reason}")]
    private static partial void LogCancelling(ILogger logger, string taskId, bool force, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cancel for task {TaskId}, which is not running here")]
    private static partial void LogCancelUnknown(ILogger logger, string taskId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A task without a task id was ignored")]
    private static partial void LogNoTaskId(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId}: the result could not be sent (the connection is gone)")]
    private static partial void LogResultLost(ILogger logger, string taskId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Task {TaskId}: unexpected error")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string taskId);
}
