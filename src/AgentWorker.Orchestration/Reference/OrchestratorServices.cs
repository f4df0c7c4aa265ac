using System.Threading.Channels;
using AgentWorker.Orchestration.Protocol;
using Grpc.Core;

namespace AgentWorker.Orchestration.Reference;

/// <summary>The worker-facing API of the reference orchestrator.</summary>
internal sealed class OrchestratorService(WorkerRegistry registry) : Orchestrator.OrchestratorBase
{
    public override Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context) =>
        Task.FromResult(new RegisterResponse { WorkerId = registry.Register(request) });

    public override Task<UnregisterResponse> Unregister(UnregisterRequest request, ServerCallContext context) =>
        registry.Unregister(request.WorkerId, request.Reason.Length > 0 ? request.Reason : "no reason given")
            ? Task.FromResult(new UnregisterResponse())
            : throw new RpcException(new Status(StatusCode.NotFound, $"unknown worker id {request.WorkerId}"));

    public override Task<HeartbeatResponse> Heartbeat(HeartbeatRequest request, ServerCallContext context) =>
        registry.Heartbeat(request)
            ? Task.FromResult(new HeartbeatResponse())
            : throw new RpcException(new Status(StatusCode.NotFound, $"unknown worker id {request.WorkerId}: register again"));

    public override async Task TaskStream(IAsyncStreamReader<WorkerMessage> requestStream, IServerStreamWriter<OrchestratorMessage> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false) || requestStream.Current.Hello is not { } hello)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "the first message must be a StreamHello"));
        var outbox = Channel.CreateUnbounded<OrchestratorMessage>(new UnboundedChannelOptions { SingleReader = true });
        var worker = registry.Attach(hello.WorkerId, outbox.Writer)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"unknown worker id {hello.WorkerId}: register again"));
        using var done = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var writer = WriteAsync(outbox.Reader, responseStream, done.Token);
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                if (requestStream.Current.Event is { } taskEvent)
                    registry.OnEvent(worker, taskEvent);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or RpcException)
        {
            // The worker went away; Detach fails its tasks.
        }
        finally
        {
            registry.Detach(worker, outbox.Writer);
            outbox.Writer.TryComplete();
            await done.CancelAsync().ConfigureAwait(false);
            await writer.ConfigureAwait(false);
        }
    }

    private static async Task WriteAsync(ChannelReader<OrchestratorMessage> outbox, IServerStreamWriter<OrchestratorMessage> stream, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var message in outbox.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException or RpcException)
        {
            // The stream is closing.
        }
    }
}

/// <summary>The client-facing API: submit (and follow) a task, cancel it, list the workers.</summary>
internal sealed class ControlService(WorkerRegistry registry) : OrchestratorControl.OrchestratorControlBase
{
    public override async Task SubmitTask(SubmitTaskRequest request, IServerStreamWriter<TaskEvent> responseStream, ServerCallContext context)
    {
        var pending = registry.Dispatch(request.Task ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "task: required")), request.Worker);
        var finished = false;
        try
        {
            await foreach (var taskEvent in pending.Events.Reader.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(taskEvent, context.CancellationToken).ConfigureAwait(false);
                finished |= taskEvent.Result is not null;
            }
        }
        finally
        {
            // A submitter that stops listening takes its task with it.
            if (!finished)
                registry.Cancel(pending.TaskId, "the submitter went away", force: true);
        }
    }

    public override Task<CancelTaskResponse> CancelTask(CancelTaskRequest request, ServerCallContext context)
    {
        var worker = registry.Cancel(request.TaskId, request.Reason.Length > 0 ? request.Reason : "cancelled on request", request.Force)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"task {request.TaskId} is not running"));
        return Task.FromResult(new CancelTaskResponse { WorkerId = worker.Id });
    }

    public override Task<ListWorkersResponse> ListWorkers(ListWorkersRequest request, ServerCallContext context)
    {
        var response = new ListWorkersResponse();
        response.Workers.AddRange(registry.List());
        return Task.FromResult(response);
    }
}
