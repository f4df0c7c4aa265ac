using System.Net;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sinks;
using AgentWorker.Core.Workspace;

namespace AgentWorker.Configuration;

/// <summary>Validated, typed configuration of one worker process.</summary>
internal sealed record WorkerConfig
{
    public required ConfigValues Values { get; init; }
    public required string DataDir { get; init; }
    public required string Backend { get; init; }
    public string? RedisUrl { get; init; }
    public required string QueueName { get; init; }
    public string? PostgresUrl { get; init; }
    public required string PostgresSchema { get; init; }
    public required int Port { get; init; }
    public required IPAddress ListenAddress { get; init; }

    /// <summary>The API's address as clients reach it (<c>PUBLIC_URL</c>), for the OpenAPI document; null when not configured.</summary>
    public Uri? PublicUrl { get; init; }
    public string? ApiKey { get; init; }
    public required int RateLimitPerMinute { get; init; }
    public required int MaxQueueDepth { get; init; }
    public required long MaxBodyBytes { get; init; }
    public string? AgentsFile { get; init; }
    public required QueueOptions Queue { get; init; }
    public required PipelineOptions Pipeline { get; init; }
    public required WorkspaceOptions Workspace { get; init; }
    public required SandboxOptions Sandbox { get; init; }
    public required Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; }
    public required string LogFormat { get; init; }
    public required SinkOptions Sinks { get; init; }
    public IReadOnlyList<Uri> WebhookUrls { get; init; } = [];
    public string? WebhookSecret { get; init; }

    /// <summary>The results table (<c>[schema.]table</c>) and its database; null when that sink is off.</summary>
    public (string Table, string ConnectionString)? Results { get; init; }
    public required string LogOutput { get; init; }

    /// <summary>The orchestrator link and tool set (used by `connect`, and by `serve`/`run` with --orchestrator-addr).</summary>
    public required OrchestrationConfig Orchestration { get; init; }
    public required IntegrationConfig Integrations { get; init; }

    /// <summary>The model gateway's prices and limits (MODEL_PRICES, GATEWAY_*).</summary>
    public required Core.Gateway.GatewayOptions Gateway { get; init; }

    public string DatabasePath => Path.Combine(DataDir, "queue.db");

    /// <summary>Where jobs' artifacts are kept (under the data directory, hidden from agents).</summary>
    public string ArtifactsDir => Path.Combine(DataDir, "artifacts");

    public static WorkerConfig Load(ConfigValues values)
    {
        var apiKey = values.Get(Settings.ApiKey);
        if (apiKey is { Length: < 8 })
            throw values.Invalid(Settings.ApiKey, "must be at least 8 characters");

        var lease = values.GetNumber(Settings.LeaseSeconds, 1, 86_400);
        var heartbeat = values.GetNumber(Settings.HeartbeatSeconds, 0.1, 3_600);
        if (heartbeat >= lease)
            throw values.Invalid(Settings.HeartbeatSeconds, $"must be shorter than the lease ({lease}s, {Settings.LeaseSeconds.Flag})");

        IPAddress listen;
        var host = values.Get(Settings.Host);
        if (host is null)
            listen = apiKey is null ? IPAddress.Loopback : IPAddress.Any;
        else if (!IPAddress.TryParse(host, out listen!))
            throw values.Invalid(Settings.Host, $"'{host}' is not an IP address");
        else if (apiKey is null && !IPAddress.IsLoopback(listen))
            throw values.Invalid(Settings.Host, "listening beyond loopback needs an API key (--api-key / WORKER_API_KEY)");

        var dataDir = values.GetDirectory(Settings.DataDir);
        var workDir = values.GetDirectory(Settings.WorkDir);
        var agentsFile = values.Get(Settings.AgentsFile);
        var postgresUrl = values.Get(Settings.PostgresUrl);
        var redisUrl = values.Get(Settings.RedisUrl);
        var integrations = IntegrationConfig.Load(values);
        // In tasks-table mode POSTGRES_URL names the tasks database, not a queue.
        var backend = values.Get(Settings.Backend) is null
            ? redisUrl is not null ? "redis" : postgresUrl is not null && !integrations.PollsTasks ? "postgres" : "sqlite"
            : values.GetChoice(Settings.Backend, "sqlite", "redis", "postgres");
        if (backend == "postgres" && postgresUrl is null)
            throw values.Invalid(Settings.Backend, "postgres needs a connection string (--postgres-url / POSTGRES_URL)");
        if (backend == "redis" && redisUrl is null)
            throw values.Invalid(Settings.Backend, "redis needs a server (--redis-url / REDIS_URL)");
        var limits = new SandboxLimits
        {
            MemoryBytes = values.GetInt(Settings.SandboxMemoryMb, 16, 1_048_576) * 1024L * 1024,
            Pids = values.GetInt(Settings.SandboxPids, 8, 1_000_000),
            Cpus = values.GetNumber(Settings.SandboxCpus, 0.01, 1024),
            TmpBytes = values.GetInt(Settings.SandboxTmpMb, 1, 1_048_576) * 1024L * 1024,
            FileSizeBytes = values.GetInt(Settings.SandboxFileSizeMb, 1, 16_777_216) * 1024L * 1024,
            OpenFiles = values.GetInt(Settings.SandboxOpenFiles, 16, 1_048_576),
        };
        if (agentsFile is not null && !File.Exists(agentsFile))
            throw values.Invalid(Settings.AgentsFile, $"file '{agentsFile}' does not exist");
        var sshKey = ExistingFile(values, Settings.GitSshKey);
        var knownHosts = ExistingFile(values, Settings.GitSshKnownHosts);
        var (webhookUrls, webhookSecret) = Webhooks(values);
        var orchestration = OrchestrationConfig.Load(values, dataDir);
        var cloneCache = LoadCloneCache(values, dataDir);

        return new WorkerConfig
        {
            Values = values,
            DataDir = dataDir,
            Backend = backend,
            RedisUrl = redisUrl,
            QueueName = values.Get(Settings.QueueName) ?? "agent_jobs",
            PostgresUrl = postgresUrl,
            PostgresSchema = values.Get(Settings.PostgresSchema) ?? "agent_worker",
            Port = values.GetInt(Settings.Port, 0, 65_535),
            ListenAddress = listen,
            PublicUrl = values.Get(Settings.PublicUrl) is { Length: > 0 } publicUrl ? IntegrationConfig.HttpUrl(values, Settings.PublicUrl, publicUrl) : null,
            ApiKey = apiKey,
            RateLimitPerMinute = values.GetInt(Settings.RateLimit, 0, 1_000_000),
            MaxQueueDepth = values.GetInt(Settings.MaxQueueDepth, 0, int.MaxValue),
            MaxBodyBytes = values.GetInt(Settings.MaxBodyBytes, 1_024, 64 * 1024 * 1024),
            AgentsFile = agentsFile,
            Queue = new QueueOptions
            {
                LeaseDuration = TimeSpan.FromSeconds(lease),
                RetryBaseDelay = TimeSpan.FromSeconds(values.GetNumber(Settings.RetryBaseDelay, 0, 86_400)),
            },
            Pipeline = new PipelineOptions
            {
                Slots = values.GetInt(Settings.Workers, 1, 1_000),
                DefaultAgent = values.Get(Settings.DefaultAgent),
                DefaultTimeout = TimeSpan.FromSeconds(values.GetInt(Settings.JobTimeout, 1, 86_400)),
                HeartbeatInterval = TimeSpan.FromSeconds(heartbeat),
                ShutdownGrace = TimeSpan.FromSeconds(values.GetNumber(Settings.ShutdownGrace, 0, 86_400)),
                MaxOutputBytes = values.GetInt(Settings.MaxOutputBytes, 1_024, int.MaxValue),
                MaxArtifactBytes = values.GetInt(Settings.MaxArtifactMb, 0, 1_000_000) * 1024L * 1024,
                MaxDiffBytes = values.GetInt(Settings.MaxDiffMb, 1, 1_000_000) * 1024L * 1024,
                Redactor = new SecretRedactor(Settings.All.Where(s => s.Secret).Select(values.Get)),
                Limits = limits,
                AgentVariables = WorkerServices.AgentVariables(),
                Egress = new EgressOptions
                {
                    AllowCidrs = values.GetList(Settings.EgressAllowCidrs, CidrRule.Parse),
                    Resolve = values.GetList(Settings.EgressResolve, ResolvePin.Parse),
                    JobsMayAddHosts = values.GetBool(Settings.EgressJobsMayAddHosts),
                    MaxConnections = values.GetInt(Settings.EgressMaxConnections, 1, 100_000),
                    MaxBytes = values.GetLong(Settings.EgressMaxMb, 1, 1L << 30) * 1024 * 1024,
                    IdleTimeout = TimeSpan.FromSeconds(values.GetInt(Settings.EgressIdleTimeout, 1, 86_400)),
                },
            },
            Gateway = new Core.Gateway.GatewayOptions
            {
                Prices = values.Get(Settings.ModelPrices) is { Length: > 0 } prices ? ParsePrices(values, prices) : Core.Gateway.PriceTable.Empty,
                MaxRequestBytes = values.GetLong(Settings.GatewayMaxRequestMb, 1, 1L << 20) << 20,
                MaxResponseBytes = values.GetLong(Settings.GatewayMaxResponseMb, 1, 1L << 20) << 20,
                Timeout = TimeSpan.FromSeconds(values.GetInt(Settings.GatewayTimeout, 1, 86_400)),
            },
            Sandbox = new SandboxOptions
            {
                Kind = values.GetChoice(Settings.Sandbox, SandboxOptions.Bubblewrap, SandboxOptions.None),
                Limits = limits,
                HostUid = values.GetInt(Settings.SandboxUid, 1, int.MaxValue),
                StateDir = Path.Combine(dataDir, "sandbox"),
                HiddenPaths = [dataDir, workDir, orchestration.Tools.WorkspaceRoot, .. OutsideOf(dataDir, cloneCache.Dir), .. new[] { values.Get(Settings.ConfigFile), agentsFile, sshKey, knownHosts }.OfType<string>().Select(Path.GetFullPath)],
            },
            Workspace = new WorkspaceOptions
            {
                WorkDir = workDir,
                MaxRepoBytes = values.GetInt(Settings.MaxRepoSizeMb, 1, 1_000_000) * 1024L * 1024,
                MaxRepoFiles = values.GetInt(Settings.MaxRepoFiles, 1, 100_000_000),
                GitToken = values.Get(Settings.GitToken),
                GitTokenHost = values.Get(Settings.GitTokenHost) is { Length: > 0 } tokenHost && Uri.CheckHostName(tokenHost) != UriHostNameType.Unknown
                    ? tokenHost
                    : throw values.Invalid(Settings.GitTokenHost, "must be a host name"),
                SshKeyFile = sshKey,
                SshKnownHostsFile = knownHosts,
                SshStrictHostKeyChecking = values.GetChoice(Settings.GitSshStrictHostKeyChecking, GitSsh.Strict, GitSsh.AcceptNew),
                CommitAuthorName = Identity(values, Settings.GitAuthorName),
                CommitAuthorEmail = Identity(values, Settings.GitAuthorEmail),
                CloneCache = values.GetChoice(Settings.CloneCache, "on", "off") == "on" ? cloneCache : null,
                // Without a sandbox the agents themselves run as root and read what they like; there is no sandbox user to read as.
                LocalReaderUid = Environment.IsPrivilegedProcess && values.GetChoice(Settings.Sandbox, SandboxOptions.Bubblewrap, SandboxOptions.None) != SandboxOptions.None
                    ? values.GetInt(Settings.SandboxUid, 1, int.MaxValue)
                    : null,
                PrivatePaths = [dataDir, workDir, cloneCache.Dir],
                LocalRepoRoots = LocalRepoRoots(values),
                RunFilesystem = RunFilesystem(values),
            },
            Sinks = new SinkOptions
            {
                MaxAttempts = values.GetInt(Settings.SinkMaxAttempts, 1, 100),
                RetryBaseDelay = TimeSpan.FromSeconds(values.GetNumber(Settings.SinkRetryBaseDelay, 0.001, 3_600)),
                AttemptTimeout = TimeSpan.FromSeconds(values.GetNumber(Settings.SinkTimeout, 0.1, 3_600)),
            },
            WebhookUrls = webhookUrls,
            WebhookSecret = webhookSecret,
            Results = ResultsTable(values, postgresUrl),
            LogLevel = values.GetChoice(Settings.LogLevel, "trace", "debug", "info", "warn", "error") switch
            {
                "trace" => Microsoft.Extensions.Logging.LogLevel.Trace,
                "debug" => Microsoft.Extensions.Logging.LogLevel.Debug,
                "warn" => Microsoft.Extensions.Logging.LogLevel.Warning,
                "error" => Microsoft.Extensions.Logging.LogLevel.Error,
                _ => Microsoft.Extensions.Logging.LogLevel.Information,
            },
            LogFormat = values.GetChoice(Settings.LogFormat, "auto", "json", "text"),
            LogOutput = values.Get(Settings.LogOutput) is { Length: > 0 } logOutput ? logOutput : throw values.Invalid(Settings.LogOutput, "must be stdout, stderr or a file path"),
            Orchestration = orchestration,
            Integrations = integrations,
        };
    }

    /// <summary>
    /// <paramref name="path"/> unless it lies in <paramref name="directory"/>: covering both would leave an empty mount point
    /// for the inner one in the outer one's cover, an entry the agent could see.
    /// </summary>
    private static string[] OutsideOf(string directory, string path) =>
        path == directory || path.StartsWith(directory.TrimEnd('/') + "/", StringComparison.Ordinal) ? [] : [path];

    private static string[]? LocalRepoRoots(ConfigValues values)
    {
        if (values.Get(Settings.LocalRepoRoots) is not { Length: > 0 } list)
            return null;
        var roots = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return roots.FirstOrDefault(root => !Path.IsPathRooted(root) || root.Contains('\0', StringComparison.Ordinal)) is { } bad
            ? throw values.Invalid(Settings.LocalRepoRoots, $"'{bad}' is not an absolute directory path")
            : [.. roots.Select(Path.GetFullPath)];
    }

    /// <summary>The per-attempt tmpfs caps; null when the attempt's trees stay on WORK_DIR's filesystem.</summary>
    private static RunFilesystemOptions? RunFilesystem(ConfigValues values)
    {
        var home = values.GetInt(Settings.SandboxHomeMb, 1, 1_048_576) * 1024L * 1024;
        var choice = values.GetChoice(Settings.WorkspaceTmpfs, "auto", "on", "off");
        if (choice == "on" && !Environment.IsPrivilegedProcess)
            throw values.Invalid(Settings.WorkspaceTmpfs, "on needs a root worker (mounting a tmpfs needs CAP_SYS_ADMIN); use auto or off");
        if (choice == "off" || !Environment.IsPrivilegedProcess)
            return null;
        // MAX_ARTIFACT_MB=0 keeps no reported file, but the folder still needs a little room; a tmpfs of size 0 would be unlimited.
        return new RunFilesystemOptions { HomeBytes = home, ArtifactBytes = Math.Max(values.GetInt(Settings.MaxArtifactMb, 0, 1_000_000) * 1024L * 1024, 1024 * 1024) };
    }

    /// <summary>The clone cache settings, checked even when the cache is off so a typo shows before someone turns it on.</summary>
    private static CloneCacheOptions LoadCloneCache(ConfigValues values, string dataDir) => new()
    {
        Dir = values.Get(Settings.CloneCacheDir) is { Length: > 0 } ? values.GetDirectory(Settings.CloneCacheDir) : Path.Combine(dataDir, "clone-cache"),
        MaxBytes = values.GetLong(Settings.CloneCacheMaxMb, 1, 1L << 30) * 1024 * 1024,
        MaxAge = values.GetDuration(Settings.CloneCacheMaxAge, TimeSpan.FromMinutes(1), TimeSpan.FromDays(3650)),
    };

    private static string? ExistingFile(ConfigValues values, Setting setting) =>
        values.Get(setting) is { Length: > 0 } file
            ? File.Exists(file) ? Path.GetFullPath(file) : throw values.Invalid(setting, $"file '{file}' does not exist")
            : null;

    private static Core.Gateway.PriceTable ParsePrices(ConfigValues values, string json)
    {
        try
        {
            return Core.Gateway.PriceTable.Parse(json);
        }
        catch (FormatException e)
        {
            throw values.Invalid(Settings.ModelPrices, e.Message.Replace("MODEL_PRICES: ", "", StringComparison.Ordinal));
        }
    }

    private static string Identity(ConfigValues values, Setting setting) =>
        values.Get(setting) is { Length: > 0 and <= 200 } text && !text.Any(c => char.IsControl(c) || c is '<' or '>')
            ? text
            : throw values.Invalid(setting, "must be 1-200 characters without '<', '>' or control characters");

    private static (IReadOnlyList<Uri> Urls, string? Secret) Webhooks(ConfigValues values)
    {
        var secret = values.Get(Settings.WebhookSecret);
        if (values.Get(Settings.WebhookUrl) is not { Length: > 0 } list)
            return ([], secret);
        var urls = new List<Uri>();
        foreach (var text in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // The value is secret (paths often carry tokens), so errors describe the URL without repeating it.
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                throw values.Invalid(Settings.WebhookUrl, $"URL #{urls.Count + 1} is not an absolute http(s) URL");
            if (url.UserInfo.Length > 0)
                throw values.Invalid(Settings.WebhookUrl, $"URL #{urls.Count + 1} must not embed credentials; receivers check the signature instead");
            urls.Add(url);
        }
        if (secret is not { Length: >= 16 })
            throw values.Invalid(Settings.WebhookSecret, "webhooks are signed: set a secret of at least 16 characters");
        return (urls, secret);
    }

    private static (string Table, string ConnectionString)? ResultsTable(ConfigValues values, string? postgresUrl)
    {
        if (values.Get(Settings.ResultsTable) is not { Length: > 0 } table)
            return null;
        var parts = table.Split('.');
        if (parts.Length > 2 || !parts.All(p => p.Length is > 0 and <= 63 && (char.IsAsciiLetter(p[0]) || p[0] == '_') && p.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')))
            throw values.Invalid(Settings.ResultsTable, $"'{table}' is not a table name ([schema.]name of letters, digits and _)");
        var connection = values.Get(Settings.ResultsPostgresUrl) ?? postgresUrl
            ?? throw values.Invalid(Settings.ResultsTable, "needs a database (--results-postgres-url / RESULTS_POSTGRES_URL, or POSTGRES_URL)");
        return (table, connection);
    }
}
