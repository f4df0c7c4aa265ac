using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Configuration;
using AgentWorker.Orchestration;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Orchestration.Reference;
using AgentWorker.Orchestration.Tools;
using Google.Protobuf;
using Grpc.Core;

namespace AgentWorker.Cli;

/// <summary>`connect` (the worker side of the orchestrator link) and `orchestrator serve|send-task|workers|cancel` (the reference orchestrator).</summary>
internal static class OrchestratorCommands
{
    private static readonly JsonFormatter EventJson = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(false));
    private static readonly JsonFormatter IndentedJson = new(JsonFormatter.Settings.Default.WithIndentation());

    public static Command Connect(CommandAction action) =>
        new Command("connect", "Attach to an orchestrator as a tool worker: register, heartbeat, run the tools and agent jobs it sends (agent jobs on --workers slots). Reconnects and re-registers when the connection drops.")
            .WithAction(action, (context, cancellationToken) =>
            {
                var config = context.Config with { Orchestration = context.Config.Orchestration with { LinkRequested = true } };
                return HostCommands.RunWorkersAsync(context, config, cancellationToken);
            });

    public static Command Create(CommandAction action)
    {
        var orchestrator = new Command("orchestrator", "The reference orchestrator: run it, send it tasks, list its workers, cancel tasks. Clients dial --orchestrator-addr.");
        orchestrator.Subcommands.Add(Serve(action));
        orchestrator.Subcommands.Add(SendTask(action));
        orchestrator.Subcommands.Add(Workers(action));
        orchestrator.Subcommands.Add(Cancel(action));
        return orchestrator;
    }

    private static Command Serve(CommandAction action)
    {
        var listen = new Option<string?>("--listen") { Description = "unix:///PATH or http://HOST:PORT (default: --orchestrator-addr, unix:///tmp/agent-worker-grpc.sock)." };
        return new Command("serve", "Run the reference orchestrator: registers workers (logged by name), tracks heartbeats, dispatches tasks, forwards cancels.") { listen }
            .WithAction(action, async (context, _) =>
            {
                var config = context.Config;
                var text = context.Parse.GetValue(listen) ?? config.Orchestration.Link.Address.Text;
                OrchestratorAddress address;
                try
                {
                    address = OrchestratorAddress.Parse(text);
                    if (address.HttpUri is not null)
                        address.ListenEndPoint();
                }
                catch (FormatException e)
                {
                    throw new ConfigException($"invalid option --listen: {e.Message}");
                }
                var options = new ReferenceOrchestratorOptions
                {
                    Listen = address,
                    MaxReceiveMessageBytes = config.Orchestration.Link.MaxReceiveMessageBytes,
                    MaxSendMessageBytes = config.Orchestration.Link.MaxSendMessageBytes,
                };
                try
                {
                    await using var app = ReferenceOrchestrator.Build(options, logging => logging.AddWorkerLogging(config));
                    await app.RunAsync();
                }
                catch (IOException e)
                {
                    throw new CliException($"cannot listen on {address}: {e.Message}");
                }
                return ExitCodes.Ok;
            });
    }

    private static Command SendTask(CommandAction action)
    {
        var tool = new Option<string?>("--tool") { Description = $"Tool to run: {string.Join(", ", ToolNames.All)}." };
        var args = new Option<string?>("--args") { Description = """The tool's arguments as a JSON object, e.g. '{"pattern":"TODO","path":"src"}' (fields as in the .proto, camelCase or snake_case).""" };
        var content = new Option<string?>("--content") { Description = "file_write: the text to write." };
        var contentFile = new Option<string?>("--content-file") { Description = "file_write: a file whose bytes to write." };
        var job = new Option<string?>("--job") { Description = "Send an agent job instead of a tool call: its JSON, as HTTP intake takes it." };
        var workspace = new Option<string?>("--workspace") { Description = "Tool workspace name on the worker (a directory under its --tool-workspaces)." };
        var worker = new Option<string?>("--worker") { Description = "Worker name; default: any worker offering the tool with a free slot." };
        var taskId = new Option<string?>("--task-id") { Description = "Task id (default: generated)." };
        var timeout = new Option<string?>("--task-timeout") { Description = "Shorter timeout than the tool's own, e.g. 10s." };
        var json = new Option<bool>("--json") { Description = "Print every task event as a JSON line instead of the output." };
        var command = new Command("send-task", "Submit one task to the orchestrator, stream its output, exit 0 when it succeeded and 1 otherwise.")
        {
            tool, args, content, contentFile, job, workspace, worker, taskId, timeout, json,
        };
        return command.WithAction(action, async (context, cancellationToken) =>
        {
            var parse = context.Parse;
            var spec = new TaskSpec { TaskId = parse.GetValue(taskId) ?? $"t-{Ulid.NewUlid()}", Workspace = parse.GetValue(workspace) ?? "" };
            if (parse.GetValue(job) is { } jobJson)
            {
                if (parse.GetValue(tool) is not null)
                    throw new ConfigException("invalid option --job: give either --tool or --job");
                spec.Agent = new AgentJob { JobJson = jobJson };
            }
            else
            {
                spec.Tool = ToolCallFrom(parse.GetValue(tool), parse.GetValue(args), parse.GetValue(content), parse.GetValue(contentFile));
            }
            if (parse.GetValue(timeout) is { } timeoutText)
            {
                spec.Timeout = Durations.TryParse(timeoutText, out var value) && value > TimeSpan.Zero
                    ? Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(value)
                    : throw new ConfigException($"invalid option --task-timeout: '{timeoutText}' is not a duration (e.g. 10s)");
            }
            return await Call(context, async client =>
            {
                using var call = client.SubmitTask(new SubmitTaskRequest { Task = spec, Worker = parse.GetValue(worker) ?? "" }, cancellationToken: cancellationToken);
                TaskResult? result = null;
                await using var stdout = Console.OpenStandardOutput();
                await using var stderr = Console.OpenStandardError();
                await foreach (var taskEvent in call.ResponseStream.ReadAllAsync(cancellationToken))
                {
                    if (parse.GetValue(json))
                        Console.WriteLine(EventJson.Format(taskEvent));
                    else if (taskEvent.Output is { } chunk)
                        await (chunk.Stream == OutputStream.Stderr ? stderr : stdout).WriteAsync(chunk.Data.Memory, cancellationToken);
                    else if (taskEvent.Progress is { } progress)
                        await Console.Error.WriteLineAsync($"# {progress.Message}");
                    result = taskEvent.Result ?? result;
                }
                if (result is null)
                    throw new CliException($"task {spec.TaskId}: the orchestrator ended the stream without a result");
                if (result.State == TaskState.Succeeded)
                    return ExitCodes.Ok;
                if (!parse.GetValue(json))
                    await Console.Error.WriteLineAsync($"agent-worker: task {spec.TaskId} {Name(result.State)} ({Name(result.Code)}): {result.Error}");
                return ExitCodes.Failure;
            });
        });
    }

    private static Command Workers(CommandAction action) =>
        new Command("workers", "List the workers registered with the orchestrator as JSON: capabilities, heartbeats, active tasks, load.")
            .WithAction(action, (context, cancellationToken) => Call(context, async client =>
            {
                var response = await client.ListWorkersAsync(new ListWorkersRequest(), cancellationToken: cancellationToken);
                Console.WriteLine(IndentedJson.Format(response));
                return ExitCodes.Ok;
            }));

    private static Command Cancel(CommandAction action)
    {
        var id = new Argument<string>("task-id") { Description = "The task to cancel." };
        var reason = new Option<string?>("--reason") { Description = "Why (passed to the worker)." };
        var force = new Option<bool>("--force") { Description = "Kill at once instead of giving the task the worker's cancel grace." };
        return new Command("cancel", "Cancel a running task (the worker kills its sandbox).") { id, reason, force }
            .WithAction(action, (context, cancellationToken) => Call(context, async client =>
            {
                var response = await client.CancelTaskAsync(new CancelTaskRequest
                {
                    TaskId = context.Parse.GetValue(id)!,
                    Reason = context.Parse.GetValue(reason) ?? "",
                    Force = context.Parse.GetValue(force),
                }, cancellationToken: cancellationToken);
                Console.WriteLine($"cancel sent to worker {response.WorkerId}");
                return ExitCodes.Ok;
            }));
    }

    /// <summary>Builds the tool call from --tool and --args (JSON mapped onto the tool's message), failing with the flag's name.</summary>
    internal static ToolCall ToolCallFrom(string? tool, string? args, string? content, string? contentFile)
    {
        if (tool is null)
            throw new ConfigException("invalid option --tool: required (or --job for an agent job)");
        if (!ToolNames.All.Contains(tool))
            throw new ConfigException($"invalid option --tool: unknown tool '{tool}' ({string.Join(", ", ToolNames.All)})");
        JsonNode? arguments;
        try
        {
            arguments = JsonNode.Parse(args ?? "{}");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"invalid option --args: not JSON ({e.Message})");
        }
        if (arguments is not JsonObject)
            throw new ConfigException("invalid option --args: must be a JSON object");
        ToolCall call;
        try
        {
            call = JsonParser.Default.Parse<ToolCall>(new JsonObject { [tool] = arguments.DeepClone() }.ToJsonString());
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ConfigException($"invalid option --args: {e.Message}");
        }
        if (content is not null || contentFile is not null)
        {
            if (call.FileWrite is null)
                throw new ConfigException("invalid option --content: only file_write takes content");
            if (content is not null && contentFile is not null)
                throw new ConfigException("invalid option --content-file: give either --content or --content-file");
            try
            {
                call.FileWrite.Content = contentFile is null ? ByteString.CopyFromUtf8(content!) : ByteString.CopyFrom(File.ReadAllBytes(contentFile));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException($"invalid option --content-file: cannot read {contentFile}: {e.Message}");
            }
        }
        return call;
    }

    /// <summary>Runs one control call; an orchestrator that cannot be reached or refuses is one clear line and exit 1.</summary>
    private static async Task<int> Call(CommandContext context, Func<OrchestratorControl.OrchestratorControlClient, Task<int>> body)
    {
        var link = context.Config.Orchestration.Link;
        using var channel = link.Address.CreateChannel(link.DialTimeout, link.MaxReceiveMessageBytes, link.MaxSendMessageBytes);
        try
        {
            return await body(new OrchestratorControl.OrchestratorControlClient(channel));
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
        {
            throw new CliException($"cannot reach the orchestrator at {link.Address} (--orchestrator-addr): {e.Status.Detail}");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted && e.Status.Detail.Contains("message size", StringComparison.OrdinalIgnoreCase))
        {
            throw new CliException($"orchestrator at {link.Address}: {e.Status.Detail} (message limits: --max-send-msg-size here, --max-recv-msg-size of the orchestrator)");
        }
        catch (RpcException e)
        {
            throw new CliException($"orchestrator at {link.Address}: {e.Status.Detail}");
        }
    }

    private static string Name(Enum value) => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}
