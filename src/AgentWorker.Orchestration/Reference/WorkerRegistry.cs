using System.Threading.Channels;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Orchestration.Tools;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Orchestration.Reference;

/// <summary>A registered worker as the reference orchestrator tracks it.</summary>
internal sealed class WorkerEntry(string id, RegisterRequest registration, DateTimeOffset registeredAt)
{
    public string Id { get; } = id;
    public RegisterRequest Registration { get; } = registration;
    public string Name => Registration.Name;
    public DateTimeOffset RegisteredAt { get; } = registeredAt;
    public DateTimeOffset? LastHeartbeat { get; set; }
    public long Heartbeats { get; set; }
    public HeartbeatRequest? LastReport { get; set; }

    /// <summary>Where tasks and cancels for this worker go while its task stream is open.</summary>
    public ChannelWriter<OrchestratorMessage>? Outbox { get; set; }

    public HashSet<string> Tasks { get; } = new(StringComparer.Ordinal);

    public TimeSpan HeartbeatInterval => Registration.HeartbeatInterval?.ToTimeSpan() is { } i && i > TimeSpan.Zero ? i : TimeSpan.FromSeconds(30);

    public bool Offers(string tool) => tool == "agent" ? Registration.Capabilities.Agents.Count > 0 : Registration.Capabilities.Tools.Any(t => t.Name == tool);
}

/// <summary>A dispatched task: its worker and the events on their way to the submitter.</summary>
internal sealed class PendingTask(string taskId, WorkerEntry worker)
{
    public string TaskId { get; } = taskId;
    public WorkerEntry Worker { get; } = worker;
    public Channel<TaskEvent> Events { get; } = Channel.CreateUnbounded<TaskEvent>(new UnboundedChannelOptions { SingleReader = true });
}

/// <summary>
/// The reference orchestrator's state: registered workers (by id), their heartbeats and open task streams, and
/// the tasks in flight. Routing picks a connected worker with a fresh heartbeat that offers the tool and has a free
/// slot, and refuses a task larger than the worker accepts (its --max-recv-msg-size) with a clear error.
/// </summary>
internal sealed partial class WorkerRegistry(ReferenceOrchestratorOptions options, TimeProvider time, ILogger<WorkerRegistry> logger)
{
    /// <summary>A worker whose heartbeats stopped for this many intervals is not given tasks.</summary>
    private const int MissedHeartbeatsTolerated = 3;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, WorkerEntry> _workers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PendingTask> _tasks = new(StringComparer.Ordinal);

    public string Register(RegisterRequest request)
    {
        if (request.Name.Length == 0)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name: required"));
        var entry = new WorkerEntry($"w-{Guid.NewGuid():N}"[..14], request, time.GetUtcNow());
        List<WorkerEntry> replaced;
        lock (_gate)
        {
            // A name is one worker: the same name registering again is that worker back after losing its connection.
            replaced = [.. _workers.Values.Where(w => w.Name == request.Name)];
            foreach (var old in replaced)
                Remove(old, $"worker {old.Name} registered again as {entry.Id}");
            _workers[entry.Id] = entry;
        }
        LogRegistered(logger, request.Name, entry.Id, string.Join(",", request.Capabilities.Tools.Select(t => t.Name)),
            request.Capabilities.Agents.Count, request.Capabilities.MaxConcurrentTasks, request.Hostname);
        return entry.Id;
    }

    public bool Unregister(string workerId, string reason)
    {
        lock (_gate)
        {
            if (!_workers.TryGetValue(workerId, out var entry))
                return false;
            Remove(entry, $"worker {entry.Name} unregistered ({reason})");
            LogUnregistered(logger, entry.Name, workerId, reason);
            return true;
        }
    }

    public bool Heartbeat(HeartbeatRequest request)
    {
        lock (_gate)
        {
            if (!_workers.TryGetValue(request.WorkerId, out var entry))
                return false;
            entry.LastHeartbeat = time.GetUtcNow();
            entry.Heartbeats++;
            entry.LastReport = request;
            LogHeartbeat(logger, entry.Name, request.ActiveTaskIds.Count);
            return true;
        }
    }

    /// <summary>Connects a worker's open task stream; null when the id is unknown.</summary>
    public WorkerEntry? Attach(string workerId, ChannelWriter<OrchestratorMessage> outbox)
    {
        lock (_gate)
        {
            if (!_workers.TryGetValue(workerId, out var entry))
                return null;
            entry.Outbox?.TryComplete();
            entry.Outbox = outbox;
            LogStream(logger, entry.Name, "connected");
            return entry;
        }
    }

    public void Detach(WorkerEntry entry, ChannelWriter<OrchestratorMessage> outbox)
    {
        lock (_gate)
        {
            if (entry.Outbox != outbox)
                return;
            entry.Outbox = null;
            FailTasks(entry, $"worker {entry.Name} disconnected");
            LogStream(logger, entry.Name, "disconnected");
        }
    }

    /// <summary>Routes <paramref name="task"/>; throws an <see cref="RpcException"/> that says why when it cannot.</summary>
    public PendingTask Dispatch(TaskSpec task, string workerName)
    {
        if (task.KindCase == TaskSpec.KindOneofCase.None)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "task: needs a tool call or an agent job"));
        string tool;
        try
        {
            tool = task.KindCase == TaskSpec.KindOneofCase.Agent ? "agent" : ToolExecutor.Name(task.Tool);
        }
        catch (Policy.TaskRefusedException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }
        if (task.TaskId.Length == 0)
            task.TaskId = $"t-{Guid.NewGuid():N}";
        var size = new OrchestratorMessage { Task = task }.CalculateSize();
        lock (_gate)
        {
            if (_tasks.ContainsKey(task.TaskId))
                throw new RpcException(new Status(StatusCode.AlreadyExists, $"task {task.TaskId} is already running"));
            var now = time.GetUtcNow();
            var named = _workers.Values.Where(w => workerName.Length == 0 || w.Name == workerName).ToList();
            if (workerName.Length > 0 && named.Count == 0)
                throw new RpcException(new Status(StatusCode.NotFound, $"no worker named '{workerName}' is registered"));
            var offering = named.Where(w => w.Outbox is not null && w.Offers(tool)
                && now - (w.LastHeartbeat ?? w.RegisteredAt) <= w.HeartbeatInterval * MissedHeartbeatsTolerated).ToList();
            if (offering.Count == 0)
                throw new RpcException(new Status(StatusCode.Unavailable, $"no connected worker{(workerName.Length > 0 ? $" named '{workerName}'" : "")} offers {tool}"));
            var worker = offering.Where(w => w.Tasks.Count < Math.Max(1, w.Registration.Capabilities.MaxConcurrentTasks)).MinBy(w => w.Tasks.Count)
                ?? throw new RpcException(new Status(StatusCode.ResourceExhausted, $"every worker offering {tool} is busy"));
            var limit = Math.Min(worker.Registration.Capabilities.MaxRecvMsgSize, options.MaxSendMessageBytes);
            if (size > limit)
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"the task is {size} bytes, more than worker {worker.Name} accepts in one message ({limit} bytes; --max-recv-msg-size of the worker, --max-send-msg-size of the orchestrator)"));
            var pending = new PendingTask(task.TaskId, worker);
            _tasks[task.TaskId] = pending;
            worker.Tasks.Add(task.TaskId);
            worker.Outbox!.TryWrite(new OrchestratorMessage { Task = task });
            LogDispatched(logger, task.TaskId, tool, worker.Name, size);
            return pending;
        }
    }

    /// <summary>An event from a worker's stream, passed to the task's submitter; a result ends the task.</summary>
    public void OnEvent(WorkerEntry worker, TaskEvent taskEvent)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue(taskEvent.TaskId, out var pending) || pending.Worker != worker)
                return;
            pending.Events.Writer.TryWrite(taskEvent);
            if (taskEvent.Result is { } result)
            {
                Finish(pending);
                LogFinished(logger, taskEvent.TaskId, worker.Name, result.State.ToString(), result.Error);
            }
        }
    }

    /// <summary>Forwards a cancel to the task's worker; returns the worker, or null when the task is not running.</summary>
    public WorkerEntry? Cancel(string taskId, string reason, bool force)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue(taskId, out var pending) || pending.Worker.Outbox is not { } outbox)
                return null;
            outbox.TryWrite(new OrchestratorMessage { Cancel = new Cancel { TaskId = taskId, Reason = reason, Force = force } });
            LogCancel(logger, taskId, pending.Worker.Name, force, reason);
            return pending.Worker;
        }
    }

    public IReadOnlyList<WorkerInfo> List()
    {
        lock (_gate)
        {
            return [.. _workers.Values.OrderBy(w => w.Name, StringComparer.Ordinal).Select(w =>
            {
                var info = new WorkerInfo
                {
                    WorkerId = w.Id,
                    Name = w.Name,
                    Version = w.Registration.Version,
                    Hostname = w.Registration.Hostname,
                    Capabilities = w.Registration.Capabilities,
                    RegisteredAt = Timestamp.FromDateTimeOffset(w.RegisteredAt),
                    Heartbeats = w.Heartbeats,
                    Connected = w.Outbox is not null,
                    HeartbeatInterval = Duration.FromTimeSpan(w.HeartbeatInterval),
                    Usage = w.LastReport?.Usage,
                };
                if (w.LastHeartbeat is { } last)
                    info.LastHeartbeat = Timestamp.FromDateTimeOffset(last);
                info.ActiveTaskIds.AddRange(w.Tasks.Order(StringComparer.Ordinal));
                return info;
            })];
        }
    }

    private void Remove(WorkerEntry entry, string reason)
    {
        _workers.Remove(entry.Id);
        entry.Outbox?.TryComplete();
        entry.Outbox = null;
        FailTasks(entry, reason);
    }

    private void FailTasks(WorkerEntry entry, string reason)
    {
        foreach (var taskId in entry.Tasks.ToList())
        {
            if (!_tasks.TryGetValue(taskId, out var pending))
                continue;
            pending.Events.Writer.TryWrite(new TaskEvent
            {
                TaskId = taskId,
                At = Timestamp.FromDateTimeOffset(time.GetUtcNow()),
                Result = new TaskResult { State = TaskState.Failed, Code = ErrorCode.WorkerLost, Error = reason },
            });
            Finish(pending);
        }
    }

    private void Finish(PendingTask pending)
    {
        _tasks.Remove(pending.TaskId);
        pending.Worker.Tasks.Remove(pending.TaskId);
        pending.Events.Writer.TryComplete();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Name} registered as {WorkerId} from {Hostname}: tools [{Tools}], {Agents} agent(s), up to {MaxTasks} task(s) at once")]
    private static partial void LogRegistered(ILogger logger, string name, string workerId, string tools, int agents, int maxTasks, string hostname);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Name} ({WorkerId}) unregistered: {Reason}")]
    private static partial void LogUnregistered(ILogger logger, string name, string workerId, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heartbeat from worker {Name} ({Active} active task(s))")]
    private static partial void LogHeartbeat(ILogger logger, string name, int active);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Name} task stream {Change}")]
    private static partial void LogStream(ILogger logger, string name, string change);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} ({Tool}, {Bytes} bytes) sent to worker {Name}")]
    private static partial void LogDispatched(ILogger logger, string taskId, string tool, string name, int bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} on worker {Name} ended {State} {Error}")]
    private static partial void LogFinished(ILogger logger, string taskId, string name, string state, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cancel of task {TaskId} (force {Force}) sent to worker {Name}: {Reason}")]
    private static partial void LogCancel(ILogger logger, string taskId, string name, bool force, string reason);
}
