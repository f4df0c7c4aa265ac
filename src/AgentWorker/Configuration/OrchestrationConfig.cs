using System.Globalization;
using AgentWorker.Core.Egress;
using AgentWorker.Orchestration;
using AgentWorker.Orchestration.Tools;
using AgentWorker.Orchestration.Worker;

namespace AgentWorker.Configuration;

/// <summary>The orchestrator link and tool set settings, validated; errors name the setting (or the config file key).</summary>
internal sealed record OrchestrationConfig(OrchestratorLinkOptions Link, ToolOptions Tools, bool LinkRequested)
{
    private const string LimitsSection = "toolLimits";
    private const long MiB = 1024 * 1024;

    public static OrchestrationConfig Load(ConfigValues values, string dataDir)
    {
        OrchestratorAddress address;
        try
        {
            address = OrchestratorAddress.Parse(values.Get(Settings.OrchestratorAddr) ?? OrchestratorAddress.Default);
        }
        catch (FormatException e)
        {
            throw values.Invalid(Settings.OrchestratorAddr, e.Message);
        }
        var name = values.Get(Settings.WorkerName) ?? $"worker-{Environment.MachineName}";
        if (name.Length is 0 or > 128 || name.Any(char.IsControl))
            throw values.Invalid(Settings.WorkerName, "must be 1-128 printable characters");
        var link = new OrchestratorLinkOptions
        {
            Address = address,
            Name = name,
            DialTimeout = values.GetDuration(Settings.DialTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1)),
            RpcTimeout = values.GetDuration(Settings.RpcTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1)),
            MaxReceiveMessageBytes = (int)values.GetLong(Settings.MaxRecvMsgSize, 4096, int.MaxValue),
            MaxSendMessageBytes = (int)values.GetLong(Settings.MaxSendMsgSize, 4096, int.MaxValue),
            ReconnectInterval = values.GetDuration(Settings.ReconnectInterval, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1)),
            ReconnectMaxAttempts = values.GetInt(Settings.ReconnectMaxAttempts, 0, int.MaxValue),
            HeartbeatInterval = values.GetDuration(Settings.HeartbeatInterval, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1)),
            MaxConcurrentTasks = values.GetInt(Settings.MaxConcurrentTasks, 1, 1000),
            CancelGrace = values.GetDuration(Settings.CancelGrace, TimeSpan.Zero, TimeSpan.FromHours(1)),
        };

        var enabled = (values.Get(Settings.Tools) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (enabled.FirstOrDefault(t => !ToolNames.All.Contains(t)) is { } unknown)
            throw values.Invalid(Settings.Tools, $"unknown tool '{unknown}' (tools: {string.Join(", ", ToolNames.All)})");
        var limits = ToolLimits(values);
        var searchUrl = values.Get(Settings.WebSearchUrl);
        if (searchUrl is not null && (!Uri.TryCreate(searchUrl.Replace("{query}", "q", StringComparison.Ordinal).Replace("{count}", "1", StringComparison.Ordinal), UriKind.Absolute, out var searchUri)
            || searchUri.Scheme is not ("http" or "https") || !searchUrl.Contains("{query}", StringComparison.Ordinal)))
            throw values.Invalid(Settings.WebSearchUrl, "must be an http(s) URL containing {query}");
        var tools = new ToolOptions
        {
            Tools = enabled.Distinct().ToDictionary(t => t, t => limits[t]),
            WorkspaceRoot = values.Get(Settings.ToolWorkspaces) is { Length: > 0 } ? values.GetDirectory(Settings.ToolWorkspaces) : Path.Combine(dataDir, "workspaces"),
            WebAllow = values.GetList(Settings.WebAllow, CidrRule.Parse),
            SearchUrl = searchUrl,
        };
        return new OrchestrationConfig(link, tools, values.Describe(Settings.OrchestratorAddr).Origin != ConfigOrigin.Default);
    }

    /// <summary>
    /// Per-tool limits: the defaults, overridden by the config file's <c>toolLimits:</c> section, e.g.
    /// <c>toolLimits: {grep: {cpus: 0.5, memoryMb: 256, pids: 20, timeoutSeconds: 120, maxBytes: 1048576}}</c>.
    /// </summary>
    private static Dictionary<string, ToolLimits> ToolLimits(ConfigValues values)
    {
        var limits = ToolNames.All.ToDictionary(t => t, Orchestration.Tools.ToolLimits.Default);
        if (values.Section(LimitsSection) is not { } section)
            return limits;
        var file = values.Get(Settings.ConfigFile);
        ConfigException Bad(string key, string problem) => new($"invalid setting {Settings.ConfigFile.Flag}: {file}: {LimitsSection}.{key}: {problem}");
        foreach (var (toolKey, toolValue) in section)
        {
            var tool = toolKey as string ?? "";
            if (!limits.TryGetValue(tool, out var current))
                throw Bad(tool, $"unknown tool (tools: {string.Join(", ", ToolNames.All)})");
            if (toolValue is not IDictionary<object, object?> fields)
                throw Bad(tool, "must be a map of cpus, memoryMb, pids, timeoutSeconds, maxBytes");
            foreach (var (fieldKey, fieldValue) in fields)
            {
                var field = fieldKey as string ?? "";
                var text = fieldValue as string;
                double Number(double min, double max) =>
                    double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
                        ? n
                        : throw Bad($"{tool}.{field}", $"'{text}' is not a number from {min} to {max}");
                current = field switch
                {
                    "cpus" => current with { Cpus = Number(0.01, 1024) },
                    "memoryMb" => current with { MemoryBytes = (long)Number(1, 1_048_576) * MiB },
                    "pids" => current with { Pids = (int)Number(1, 1_000_000) },
                    "timeoutSeconds" => current with { Timeout = TimeSpan.FromSeconds(Number(0.1, 86_400)) },
                    "maxBytes" => current with { MaxBytes = (long)Number(1, 16L * 1024 * MiB) },
                    _ => throw Bad($"{tool}.{field}", "unknown limit (cpus, memoryMb, pids, timeoutSeconds, maxBytes)"),
                };
            }
            limits[tool] = current;
        }
        return limits;
    }
}
