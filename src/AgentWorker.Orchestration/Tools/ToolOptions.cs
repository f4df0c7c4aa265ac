using AgentWorker.Core.Egress;

namespace AgentWorker.Orchestration.Tools;

/// <summary>The tool names on the wire and in configuration.</summary>
public static class ToolNames
{
    public const string FileRead = "file_read";
    public const string FileWrite = "file_write";
    public const string FileEdit = "file_edit";
    public const string Grep = "grep";
    public const string Find = "find";
    public const string List = "list";
    public const string FetchUrl = "fetch_url";
    public const string WebSearch = "web_search";

    public static readonly IReadOnlyList<string> All = [FileRead, FileWrite, FileEdit, Grep, Find, List, FetchUrl, WebSearch];

    public static bool IsWeb(string tool) => tool is FetchUrl or WebSearch;
}

/// <summary>What one tool run may use. Every run is one sandbox with these limits; only web tools get a network.</summary>
public sealed record ToolLimits
{
    public required double Cpus { get; init; }
    public required long MemoryBytes { get; init; }
    public required int Pids { get; init; }
    public required TimeSpan Timeout { get; init; }

    /// <summary>Most bytes the tool reads, writes or returns (file content, command output, response body).</summary>
    public required long MaxBytes { get; init; }

    /// <summary>Defaults modelled on the Go tool worker: file operations 0.1 CPU/64 MB/10 pids/30 s, grep and find
    /// 0.2 CPU/128 MB/20 pids/60 s, web tools 0.2 CPU/128 MB/10 pids/30-60 s.</summary>
    public static ToolLimits Default(string tool)
    {
        const long MiB = 1024 * 1024;
        return tool switch
        {
            ToolNames.Grep or ToolNames.Find => new() { Cpus = 0.2, MemoryBytes = 128 * MiB, Pids = 20, Timeout = TimeSpan.FromSeconds(60), MaxBytes = 10 * MiB },
            ToolNames.FetchUrl => new() { Cpus = 0.2, MemoryBytes = 128 * MiB, Pids = 10, Timeout = TimeSpan.FromSeconds(60), MaxBytes = 10 * MiB },
            ToolNames.WebSearch => new() { Cpus = 0.2, MemoryBytes = 128 * MiB, Pids = 10, Timeout = TimeSpan.FromSeconds(30), MaxBytes = 1 * MiB },
            ToolNames.List => new() { Cpus = 0.1, MemoryBytes = 64 * MiB, Pids = 10, Timeout = TimeSpan.FromSeconds(30), MaxBytes = 10 * MiB },
            ToolNames.FileRead or ToolNames.FileWrite or ToolNames.FileEdit => new() { Cpus = 0.1, MemoryBytes = 64 * MiB, Pids = 10, Timeout = TimeSpan.FromSeconds(30), MaxBytes = 64 * MiB },
            _ => throw new ArgumentOutOfRangeException(nameof(tool), tool, "unknown tool"),
        };
    }
}

/// <summary>The tool set of a worker: which tools are on, their limits, where workspaces live and the web rules.</summary>
public sealed record ToolOptions
{
    /// <summary>Enabled tools and their limits.</summary>
    public required IReadOnlyDictionary<string, ToolLimits> Tools { get; init; }

    /// <summary>Directory holding the tool workspaces tasks name (<c>--tool-workspaces</c>).</summary>
    public required string WorkspaceRoot { get; init; }

    /// <summary>Addresses web tools may reach although they are loopback, private or link-local (<c>--web-allow</c>).</summary>
    public IReadOnlyList<CidrRule> WebAllow { get; init; } = [];

    /// <summary>Search API URL with <c>{query}</c> (and optionally <c>{count}</c>); web_search is off without one.</summary>
    public string? SearchUrl { get; init; }

    /// <summary>Redirects fetch_url follows, each checked like the first URL.</summary>
    public int MaxRedirects { get; init; } = 5;
}
