using System.Globalization;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Workspace;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Orchestration.Worker;

namespace AgentWorker.Orchestration.Tools;

/// <summary>
/// Runs one tool task: the policy decides first (tool enabled, workspace and paths confined, sizes, URL rules);
/// only then does anything start, each process in its own sandbox with the tool's limits. Refusals are thrown as
/// <see cref="TaskRefusedException"/>; everything else comes back as a <see cref="TaskResult"/>.
/// </summary>
internal sealed partial class ToolExecutor(
    ToolOptions options,
    ISandbox sandbox,
    ProcessRunner runner,
    WorkspaceManager workspaces,
    UrlPolicy urls,
    SandboxLimits sandboxDefaults,
    TimeProvider time)
{
    /// <summary>False under <c>--sandbox none</c>: tools then run as plain processes with the worker's rights.</summary>
    public bool Sandboxed => sandbox.Name != SandboxOptions.None;

    /// <summary>Tools this worker offers: the enabled ones, web_search only with a search backend.</summary>
    public IEnumerable<(string Name, ToolLimits Limits)> Offered =>
        options.Tools.Where(t => t.Key != ToolNames.WebSearch || options.SearchUrl is not null).Select(t => (t.Key, t.Value));

    public async Task<TaskResult> RunAsync(TaskSpec task, TaskOutput output, Func<string?> cancelReason, CancellationToken cancellationToken)
    {
        var name = Name(task.Tool);
        if (!options.Tools.TryGetValue(name, out var limits))
            throw new TaskRefusedException(ErrorCode.ToolDisabled, $"tool {name} is not enabled on this worker (--tools / WORKER_TOOLS)");
        if (name == ToolNames.WebSearch && options.SearchUrl is null)
            throw new TaskRefusedException(ErrorCode.ToolDisabled, "web_search has no search backend on this worker (--web-search-url / WORKER_WEB_SEARCH_URL)");
        var timeout = task.Timeout?.ToTimeSpan() is { } asked && asked > TimeSpan.Zero && asked < limits.Timeout ? asked : limits.Timeout;
        string? workspace = null;
        if (!ToolNames.IsWeb(name))
        {
            if (task.Workspace.Length == 0)
                throw TaskRefusedException.Argument($"workspace: {name} needs a workspace name");
            workspace = WorkspacePaths.WorkspaceDirectory(options.WorkspaceRoot, task.Workspace);
            if (name == ToolNames.FileWrite)
                Directory.CreateDirectory(workspace);
            else if (!Directory.Exists(workspace))
                throw TaskRefusedException.Argument($"workspace: '{task.Workspace}' does not exist on this worker");
        }
        using var context = new ToolContext(name, workspace, limits, output, cancelReason,
            () => new ToolSandbox(sandbox, runner, workspaces, task.TaskId, workspace, name, limits, timeout, sandboxDefaults, time));
        return task.Tool.ToolCase switch
        {
            ToolCall.ToolOneofCase.FileRead => await FileReadAsync(context, task.Tool.FileRead, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.FileWrite => await FileWriteAsync(context, task.Tool.FileWrite, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.FileEdit => await FileEditAsync(context, task.Tool.FileEdit, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.Grep => await GrepAsync(context, task.Tool.Grep, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.Find => await FindAsync(context, task.Tool.Find, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.List => await ListAsync(context, task.Tool.List, cancellationToken).ConfigureAwait(false),
            ToolCall.ToolOneofCase.FetchUrl => await FetchAsync(context, task.Tool.FetchUrl.Url, cancellationToken).ConfigureAwait(false),
            _ => await WebSearchAsync(context, task.Tool.WebSearch, cancellationToken).ConfigureAwait(false),
        };
    }

    public static string Name(ToolCall? call) => call?.ToolCase switch
    {
        ToolCall.ToolOneofCase.FileRead => ToolNames.FileRead,
        ToolCall.ToolOneofCase.FileWrite => ToolNames.FileWrite,
        ToolCall.ToolOneofCase.FileEdit => ToolNames.FileEdit,
        ToolCall.ToolOneofCase.Grep => ToolNames.Grep,
        ToolCall.ToolOneofCase.Find => ToolNames.Find,
        ToolCall.ToolOneofCase.List => ToolNames.List,
        ToolCall.ToolOneofCase.FetchUrl => ToolNames.FetchUrl,
        ToolCall.ToolOneofCase.WebSearch => ToolNames.WebSearch,
        _ => throw TaskRefusedException.Argument("tool: the task names no tool"),
    };

    private static TaskResult Success(ToolSandbox box, params (string Key, object Value)[] details)
    {
        var result = new TaskResult { State = TaskState.Succeeded, ExitCode = 0, Usage = box.Usage };
        foreach (var (key, value) in details)
            result.Details[key] = value is bool flag ? (flag ? "true" : "false") : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        return result;
    }

    private static void RejectNul(string value, string field)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
            throw TaskRefusedException.Policy($"{field}: contains a NUL byte");
    }

    /// <summary>One task's view: its limits, workspace, output, and the sandbox opened once the policy said yes.</summary>
    private sealed class ToolContext(string tool, string? workspace, ToolLimits limits, TaskOutput output, Func<string?> cancelReason, Func<ToolSandbox> open) : IDisposable
    {
        private ToolSandbox? _box;

        public string Tool => tool;
        public string? Workspace => workspace;
        public ToolLimits Limits => limits;
        public TaskOutput Output => output;
        public string? CancelReason => cancelReason();

        public ToolSandbox Open() => _box ??= open();

        public void Dispose() => _box?.Dispose();
    }
}
