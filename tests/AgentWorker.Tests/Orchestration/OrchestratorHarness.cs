using System.Text;
using AgentWorker.Orchestration;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace AgentWorker.Tests.Orchestration;

/// <summary>A real `agent-worker orchestrator serve` process on a unix socket, and a control client talking to it.</summary>
internal sealed class OrchestratorProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(30);
    private readonly GrpcChannel _channel;

    private OrchestratorProcess(string socketPath, WorkerProcess process)
    {
        SocketPath = socketPath;
        Process = process;
        _channel = Address.CreateChannel(TimeSpan.FromSeconds(5), 64 * 1024 * 1024, 64 * 1024 * 1024);
        Control = new OrchestratorControl.OrchestratorControlClient(_channel);
    }

    public string SocketPath { get; }
    public string Url => $"unix://{SocketPath}";
    public OrchestratorAddress Address => OrchestratorAddress.Parse(Url);
    public WorkerProcess Process { get; }
    public OrchestratorControl.OrchestratorControlClient Control { get; }

    /// <summary>Starts the orchestrator and returns once it answers.</summary>
    public static async Task<OrchestratorProcess> StartAsync(string socketPath, params string[] args)
    {
        var process = WorkerProcess.Start(new Dictionary<string, string>(), ["orchestrator", "serve", "--listen", $"unix://{socketPath}", .. args]);
        var orchestrator = new OrchestratorProcess(socketPath, process);
        await Eventually.UntilAsync(async () =>
        {
            if (!Processes.IsAlive(process.Pid))
                throw new InvalidOperationException($"orchestrator exited:\n{process.Output}");
            try
            {
                await orchestrator.Control.ListWorkersAsync(new ListWorkersRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                return true;
            }
            catch (RpcException)
            {
                return false;
            }
        }, ok => ok, StartDeadline, "orchestrator answers");
        return orchestrator;
    }

    public async Task<IReadOnlyList<WorkerInfo>> WorkersAsync() =>
        (await Control.ListWorkersAsync(new ListWorkersRequest(), deadline: DateTime.UtcNow.AddSeconds(10))).Workers;

    /// <summary>Waits until a worker called <paramref name="name"/> is registered with an open task stream.</summary>
    public async Task<WorkerInfo> WaitForWorkerAsync(string name, WorkerProcess worker, TimeSpan deadline) =>
        (await Eventually.UntilAsync(async () =>
        {
            if (!Processes.IsAlive(worker.Pid))
                throw new InvalidOperationException($"worker {name} exited:\n{worker.Output}");
            return (await WorkersAsync()).FirstOrDefault(w => w.Name == name && w.Connected);
        }, w => w is not null, deadline, $"worker {name} registered"))!;

    /// <summary>Submits a task and collects every event up to its result.</summary>
    public async Task<TaskRun> RunAsync(TaskSpec task, string worker)
    {
        using var call = Control.SubmitTask(new SubmitTaskRequest { Task = task, Worker = worker }, deadline: DateTime.UtcNow.AddSeconds(90));
        var events = new List<TaskEvent>();
        await foreach (var taskEvent in call.ResponseStream.ReadAllAsync())
            events.Add(taskEvent);
        return new TaskRun(events);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await Process.DisposeAsync();
    }
}

/// <summary>Everything a task sent, in order.</summary>
internal sealed record TaskRun(IReadOnlyList<TaskEvent> Events)
{
    public TaskResult Result => Events.LastOrDefault(e => e.Result is not null)?.Result ?? throw new InvalidOperationException($"no result in {this}");

    public byte[] Stdout => Bytes(OutputStream.Stdout);

    public string StdoutText => Encoding.UTF8.GetString(Stdout);

    public string StderrText => Encoding.UTF8.GetString(Bytes(OutputStream.Stderr));

    public IReadOnlyList<string> Lines => StdoutText.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private byte[] Bytes(OutputStream stream) =>
        [.. Events.Where(e => e.Output?.Stream == stream).SelectMany(e => e.Output.Data.ToByteArray())];

    public override string ToString() =>
        $"{Events.Count} event(s); result: {Events.LastOrDefault(e => e.Result is not null)?.Result}; stdout: {Cut(StdoutText)}; stderr: {Cut(StderrText)}";

    private static string Cut(string text) => text.Length > 2000 ? text[..2000] + "…" : text;
}

/// <summary>Task messages as tests write them.</summary>
internal static class Tasks
{
    public static TaskSpec Tool(string workspace, ToolCall call, string? id = null) =>
        new() { TaskId = id ?? $"t-{Guid.NewGuid():N}", Workspace = workspace, Tool = call };

    public static ToolCall Read(string path, long limit = 0) => new() { FileRead = new FileRead { Path = path, Limit = limit } };

    public static ToolCall Write(string path, byte[] content) => new() { FileWrite = new FileWrite { Path = path, Content = ByteString.CopyFrom(content) } };

    public static ToolCall Edit(string path, string oldText, string newText) => new() { FileEdit = new FileEdit { Path = path, OldText = oldText, NewText = newText } };

    public static ToolCall Grep(string pattern, string path = "") => new() { Grep = new Grep { Pattern = pattern, Path = path } };

    public static ToolCall Find(string name, string path = "") => new() { Find = new Find { Name = name, Path = path } };

    public static ToolCall List(string path = "") => new() { List = new List { Path = path } };

    public static ToolCall Fetch(string url) => new() { FetchUrl = new FetchUrl { Url = url } };

    public static ToolCall Search(string query, int max = 0) => new() { WebSearch = new WebSearch { Query = query, MaxResults = max } };
}
