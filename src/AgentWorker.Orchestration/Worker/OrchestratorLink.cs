using System.Diagnostics;
using System.Threading.Channels;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Orchestration.Tools;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Orchestration.Worker;

/// <summary>Connection states, named as gRPC names them (and as the Go tool worker logs them).</summary>
public enum LinkState { Idle, Connecting, Ready, TransientFailure, Shutdown }

/// <summary>
/// The worker's side of the orchestrator link: dial, register, heartbeat every interval, and serve the task stream.
/// A lost connection is retried every reconnect interval, and each new connection registers again; after
/// <see cref="OrchestratorLinkOptions.ReconnectMaxAttempts"/> failed attempts in a row the worker gives up and stops (exit 1).
/// Shutdown order: stop taking tasks, cancel the running ones (their results still go up), unregister, close.
/// </summary>
public sealed partial class OrchestratorLink : BackgroundService
{
    private const int HeartbeatFailuresTolerated = 3;
    private static readonly DateTime Started = DateTime.UtcNow;

    private readonly OrchestratorLinkOptions _options;
    private readonly ToolExecutor _tools;
    private readonly AgentTasks _agents;
    private readonly TaskDispatcher _dispatcher;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger<OrchestratorLink> _logger;

    internal OrchestratorLink(OrchestratorLinkOptions options, ToolExecutor tools, AgentTasks agents, TaskDispatcher dispatcher, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<OrchestratorLink> logger)
    {
        _options = options;
        _tools = tools;
        _agents = agents;
        _dispatcher = dispatcher;
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
    }

    /// <summary>Why the link gave up (the process should exit non-zero), or null.</summary>
    public string? GaveUp { get; private set; }

    public LinkState State { get; private set; } = LinkState.Idle;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_tools.Sandboxed)
            LogUnsandboxed(_logger);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            SetState(LinkState.Connecting, _options.ReconnectMaxAttempts > 0 ? $"attempt {failures + 1}/{_options.ReconnectMaxAttempts} to {_options.Address}" : $"attempt {failures + 1} to {_options.Address}");
            using var channel = _options.Address.CreateChannel(_options.DialTimeout, _options.MaxReceiveMessageBytes, _options.MaxSendMessageBytes);
            var client = new Orchestrator.OrchestratorClient(channel);
            string ended;
            try
            {
                var registration = await client.RegisterAsync(Registration(), deadline: Deadline(_options.DialTimeout + _options.RpcTimeout), cancellationToken: stoppingToken).ConfigureAwait(false);
                failures = 0;
                LogRegistered(_logger, _options.Name, registration.WorkerId, _options.Address.Text);
                SetState(LinkState.Ready, $"registered as {registration.WorkerId}");
                ended = await RunSessionAsync(client, registration.WorkerId, stoppingToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
            {
                failures++;
                ended = _options.Address.SocketPath is { } socket && !File.Exists(socket) ? $"no orchestrator socket at {socket}" : Describe(e);
                if (_options.ReconnectMaxAttempts > 0 && failures >= _options.ReconnectMaxAttempts)
                {
                    GaveUp = $"gave up reaching the orchestrator at {_options.Address} after {failures} attempt(s) (--reconnect-max-attempts {_options.ReconnectMaxAttempts}): {ended}";
                    SetState(LinkState.Shutdown, GaveUp);
                    _lifetime.StopApplication();
                    return;
                }
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException && stoppingToken.IsCancellationRequested)
            {
                break;
            }
            if (stoppingToken.IsCancellationRequested)
                break;
            SetState(LinkState.TransientFailure, $"{ended}; next attempt in {_options.ReconnectInterval.TotalSeconds:0.###}s");
            try
            {
                await Task.Delay(_options.ReconnectInterval, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        SetState(LinkState.Shutdown, "worker stopping");
    }

    /// <summary>One registration: serves the task stream and heartbeats until the connection breaks or the worker stops. Returns why it ended.</summary>
    private async Task<string> RunSessionAsync(Orchestrator.OrchestratorClient client, string workerId, CancellationToken stopping)
    {
        using var session = new CancellationTokenSource();
        using var call = client.TaskStream(cancellationToken: session.Token);
        var outbox = Channel.CreateBounded<WorkerMessage>(new BoundedChannelOptions(256) { SingleReader = true });
        async ValueTask Send(WorkerMessage message)
        {
            if (Fit(message) is not { } fitting)
                return;
            try
            {
                await outbox.Writer.WriteAsync(fitting, session.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                // The session is over; the task's events have nowhere to go.
            }
        }

        var writer = WriteAsync(call.RequestStream, outbox.Reader, session);
        await Send(new WorkerMessage { Hello = new StreamHello { WorkerId = workerId } }).ConfigureAwait(false);
        _dispatcher.Accepting = true;
        var reader = ReadAsync(call.ResponseStream, Send, session.Token);
        var heartbeat = HeartbeatAsync(client, workerId, session.Token);
        var stopped = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var registration = stopping.Register(() => stopped.TrySetResult("worker stopping"));
        var ended = await await Task.WhenAny(reader, heartbeat, stopped.Task).ConfigureAwait(false);

        if (stopping.IsCancellationRequested && !reader.IsCompleted && !heartbeat.IsCompleted)
        {
            // Stop taking tasks and cancel the running ones while the stream still carries their results; then leave.
            LogStopping(_logger, _dispatcher.ActiveTaskIds.Count);
            await _dispatcher.StopAllAsync("worker shutting down", force: false).ConfigureAwait(false);
            outbox.Writer.TryComplete();
            await writer.ConfigureAwait(false);
            try
            {
                await client.UnregisterAsync(new UnregisterRequest { WorkerId = workerId, Reason = "shutdown" }, deadline: Deadline(_options.RpcTimeout), cancellationToken: CancellationToken.None).ConfigureAwait(false);
                LogUnregistered(_logger, workerId);
            }
            catch (RpcException e)
            {
                LogUnregisterFailed(_logger, Describe(e));
            }
            await session.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(reader, heartbeat).ConfigureAwait(false);
            return "shutdown";
        }

        // The connection is gone: nothing these tasks produce can be delivered, so they are stopped now.
        await session.CancelAsync().ConfigureAwait(false);
        outbox.Writer.TryComplete();
        await _dispatcher.StopAllAsync($"connection to the orchestrator lost: {ended}", force: true).ConfigureAwait(false);
        await Task.WhenAll(reader, heartbeat, writer).ConfigureAwait(false);
        return ended;
    }

    private async Task<string> ReadAsync(IAsyncStreamReader<OrchestratorMessage> stream, Func<WorkerMessage, ValueTask> send, CancellationToken session)
    {
        try
        {
            while (await stream.MoveNext(session).ConfigureAwait(false))
            {
                var message = stream.Current;
                switch (message.KindCase)
                {
                    case OrchestratorMessage.KindOneofCase.Task:
                        _dispatcher.Start(message.Task, send);
                        break;
                    case OrchestratorMessage.KindOneofCase.Cancel:
                        _dispatcher.Cancel(message.Cancel);
                        break;
                }
            }
            return "the orchestrator closed the task stream";
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
        {
            return $"the orchestrator sent a message larger than this worker accepts (--max-recv-msg-size {_options.MaxReceiveMessageBytes}): {e.Status.Detail}";
        }
        catch (RpcException e)
        {
            return $"task stream broke: {Describe(e)}";
        }
        catch (OperationCanceledException)
        {
            return "session ended";
        }
    }

    private static async Task WriteAsync(IClientStreamWriter<WorkerMessage> stream, ChannelReader<WorkerMessage> outbox, CancellationTokenSource session)
    {
        try
        {
            await foreach (var message in outbox.ReadAllAsync(session.Token).ConfigureAwait(false))
                await stream.WriteAsync(message, session.Token).ConfigureAwait(false);
            await stream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or InvalidOperationException or IOException)
        {
            // A broken stream ends the session; the reader notices too.
            await session.CancelAsync().ConfigureAwait(false);
        }
    }

    private async Task<string> HeartbeatAsync(Orchestrator.OrchestratorClient client, string workerId, CancellationToken session)
    {
        var failures = 0;
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        try
        {
            // The first one at once: the orchestrator sees the worker's load from the start.
            do
            {
                try
                {
                    await client.HeartbeatAsync(Heartbeat(workerId), deadline: Deadline(_options.RpcTimeout), cancellationToken: session).ConfigureAwait(false);
                    failures = 0;
                    LogHeartbeat(_logger, workerId, _dispatcher.ActiveTaskIds.Count);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
                {
                    return $"the orchestrator no longer knows worker {workerId} (it restarted?)";
                }
                catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled)
                {
                    LogHeartbeatFailed(_logger, Describe(e));
                    if (++failures >= HeartbeatFailuresTolerated)
                        return $"{failures} heartbeats in a row failed: {Describe(e)}";
                }
            }
            while (await timer.WaitForNextTickAsync(session).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
        }
        catch (RpcException)
        {
            // Cancelled with the session.
        }
        return "session ended";
    }

    /// <summary>A message the stream can carry: a result too large for the send limit becomes an error result; other oversized events are dropped.</summary>
    private WorkerMessage? Fit(WorkerMessage message)
    {
        var size = message.CalculateSize();
        if (size <= _options.MaxSendMessageBytes)
            return message;
        var taskEvent = message.Event;
        LogTooLarge(_logger, taskEvent?.TaskId ?? "", size, _options.MaxSendMessageBytes);
        if (taskEvent?.Result is not { } result)
            return null;
        var error = $"the result is {size} bytes, more than this worker may send (--max-send-msg-size {_options.MaxSendMessageBytes})";
        return new WorkerMessage
        {
            Event = new TaskEvent
            {
                TaskId = taskEvent.TaskId,
                At = taskEvent.At,
                Result = new TaskResult { State = TaskState.Failed, Code = ErrorCode.MessageTooLarge, Error = error, Usage = result.Usage },
            },
        };
    }

    private RegisterRequest Registration()
    {
        var capabilities = new Capabilities
        {
            MaxConcurrentTasks = _options.MaxConcurrentTasks,
            MaxRecvMsgSize = _options.MaxReceiveMessageBytes,
            MaxSendMsgSize = _options.MaxSendMessageBytes,
        };
        foreach (var (name, limits) in _tools.Offered)
        {
            capabilities.Tools.Add(new ToolCapability
            {
                Name = name,
                Limits = new Limits
                {
                    Cpus = limits.Cpus,
                    MemoryBytes = limits.MemoryBytes,
                    Pids = limits.Pids,
                    Timeout = Duration.FromTimeSpan(limits.Timeout),
                    MaxBytes = limits.MaxBytes,
                    Network = ToolNames.IsWeb(name),
                },
            });
        }
        capabilities.Agents.AddRange(_agents.Agents);
        return new RegisterRequest
        {
            Name = _options.Name,
            Version = _options.Version,
            Hostname = Environment.MachineName,
            Capabilities = capabilities,
            HeartbeatInterval = Duration.FromTimeSpan(_options.HeartbeatInterval),
        };
    }

    private HeartbeatRequest Heartbeat(string workerId)
    {
        using var self = Process.GetCurrentProcess();
        var active = _dispatcher.ActiveTaskIds;
        var request = new HeartbeatRequest
        {
            WorkerId = workerId,
            SentAt = Timestamp.FromDateTimeOffset(_time.GetUtcNow()),
            Usage = new Protocol.ResourceUsage
            {
                RssBytes = self.WorkingSet64,
                CpuSeconds = self.TotalProcessorTime.TotalSeconds,
                ActiveTasks = active.Count,
                TasksFinished = _dispatcher.Finished,
                UptimeSeconds = (DateTime.UtcNow - Started).TotalSeconds,
            },
        };
        request.ActiveTaskIds.AddRange(active);
        return request;
    }

    private DateTime Deadline(TimeSpan timeout) => _time.GetUtcNow().UtcDateTime + timeout;

    private void SetState(LinkState state, string detail)
    {
        State = state;
        if (state == LinkState.Shutdown && GaveUp is not null)
            LogGaveUp(_logger, detail);
        else if (state == LinkState.TransientFailure)
            LogStateWarning(_logger, state, detail);
        else
            LogState(_logger, state, detail);
    }

    private static string Describe(RpcException e) => $"{e.StatusCode}: {e.Status.Detail}";

    [LoggerMessage(Level = LogLevel.Information, Message = "Orchestrator link {State}: {Detail}")]
    private static partial void LogState(ILogger logger, LinkState state, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Orchestrator link {State}: {Detail}")]
    private static partial void LogStateWarning(ILogger logger, LinkState state, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "Orchestrator link Shutdown: {Detail}")]
    private static partial void LogGaveUp(ILogger logger, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tools run WITHOUT a sandbox (--sandbox none): only the path and URL policy stands between a task and the worker's files and network")]
    private static partial void LogUnsandboxed(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Name} registered with the orchestrator at {Address} as {WorkerId}")]
    private static partial void LogRegistered(ILogger logger, string name, string workerId, string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "Unregistered {WorkerId}")]
    private static partial void LogUnregistered(ILogger logger, string workerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unregister failed: {Reason}")]
    private static partial void LogUnregisterFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: no new tasks; cancelling {Running} running task(s)")]
    private static partial void LogStopping(ILogger logger, int running);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heartbeat sent for {WorkerId} ({Active} active task(s))")]
    private static partial void LogHeartbeat(ILogger logger, string workerId, int active);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Heartbeat failed: {Reason}")]
    private static partial void LogHeartbeatFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Task {TaskId}: a {Size}-byte message exceeds --max-send-msg-size {Limit}")]
    private static partial void LogTooLarge(ILogger logger, string taskId, int size, int limit);
}
