using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Pipeline;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Sandbox;
using AgentWorker.Core.Sinks;
using AgentWorker.Core.Workspace;
using AgentWorker.Gateway;
using AgentWorker.Orchestration.Worker;
using AgentWorker.Storage.Postgres;
using AgentWorker.Storage.Redis;
using AgentWorker.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Console;

namespace AgentWorker;

/// <summary>Builds what every command shares: the queue, the agent registry, the pipeline and logging.</summary>
internal static class WorkerServices
{
    /// <summary>Opens the configured backend. A backend that cannot be reached is a startup error naming the setting.</summary>
    public static async Task<IJobQueue> OpenQueueAsync(WorkerConfig config, CancellationToken cancellationToken)
    {
        var setting = config.Backend switch
        {
            "postgres" => Settings.PostgresUrl,
            "redis" => Settings.RedisUrl,
            _ => Settings.DataDir,
        };
        try
        {
            return config.Backend switch
            {
                "postgres" => await OpenPostgresAsync(config, cancellationToken).ConfigureAwait(false),
                "redis" => await OpenRedisAsync(config, cancellationToken).ConfigureAwait(false),
                _ => await OpenSqliteAsync(config, cancellationToken).ConfigureAwait(false),
            };
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Neither backend repeats its connection string in errors, and the redactor masks it if one ever did.
            throw config.Values.Invalid(setting, $"cannot open the {config.Backend} queue: {config.Pipeline.Redactor.Redact(e.Message)}");
        }
    }

    private static async Task<IJobQueue> OpenSqliteAsync(WorkerConfig config, CancellationToken cancellationToken) =>
        await SqliteJobQueue.OpenAsync(config.DatabasePath, config.Queue, TimeProvider.System, cancellationToken).ConfigureAwait(false);

    private static async Task<IJobQueue> OpenPostgresAsync(WorkerConfig config, CancellationToken cancellationToken) =>
        await PostgresJobQueue.OpenAsync(config.PostgresUrl!, config.PostgresSchema, config.Queue, TimeProvider.System, cancellationToken).ConfigureAwait(false);

    private static async Task<IJobQueue> OpenRedisAsync(WorkerConfig config, CancellationToken cancellationToken) =>
        await RedisJobQueue.OpenAsync(config.RedisUrl!, config.QueueName, config.Queue, TimeProvider.System, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// The command that runs this binary again, used to start built-in agents as child processes (inside the sandbox,
    /// which shows agents only the app's own directory and /usr). The app host when it sits in that directory (build
    /// output, publish, single file); otherwise the dotnet host with the app's dll: a `dotnet tool` shim lives in
    /// ~/.dotnet/tools, and `dotnet agent-worker.dll` runs under the host itself.
    /// </summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        var path = Environment.ProcessPath ?? "dotnet";
        if (Path.GetFileNameWithoutExtension(path) == "agent-worker" && Path.GetDirectoryName(path) == AppContext.BaseDirectory.TrimEnd('/'))
            return [path];
        var host = Path.GetFileNameWithoutExtension(path) == "dotnet" || !AgentVariables().TryGetValue("DOTNET_ROOT", out var root)
            ? path
            : Path.Combine(root, "dotnet");
        // Assembly.Location would be empty in a single-file build; that one took the branch above.
        return [host, Path.Combine(AppContext.BaseDirectory, "agent-worker.dll")];
    }

    public static AgentRegistry LoadAgents(WorkerConfig config)
    {
        try
        {
            return AgentRegistry.Load(config.AgentsFile, SelfCommand(), Integrations.LlmVariables(config), config.Pipeline.Egress.JobsMayAddHosts);
        }
        catch (AgentRegistryException e)
        {
            throw new ConfigException($"invalid setting {Settings.AgentsFile.Flag} / {Settings.AgentsFile.Env[0]}: {e.Message}");
        }
    }

    /// <summary>Registers the worker pool and its stages. <paramref name="queue"/> is owned by the caller.</summary>
    public static IServiceCollection AddAgentWorker(this IServiceCollection services, WorkerConfig config, IJobQueue queue, AgentRegistry agents, bool runWorkers)
    {
        if (config.Pipeline.DefaultAgent is { } defaultAgent && agents.Find(defaultAgent) is null)
            throw config.Values.Invalid(Settings.DefaultAgent, $"agent '{defaultAgent}' is not in the registry");
        services.AddSingleton(config);
        services.AddSingleton(queue);
        services.AddSingleton(agents);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(config.Pipeline);
        services.AddSingleton(config.Workspace);
        services.AddSingleton<ProcessRunner>();
        var link = config.Orchestration.LinkRequested;
        if (runWorkers || link)
            services.AddSingleton(CreateSandbox(config));
        services.AddSingleton<WorkspaceManager>();
        services.TryAddSingleton<IJobMetrics, NoJobMetrics>();
        services.AddSingleton(provider => new BackendHealth(queue, config.Pipeline.Redactor, TimeProvider.System, provider.GetRequiredService<ILogger<BackendHealth>>()));
        services.AddSingleton<BackendRetry>();
        services.AddIntegrations(config, agents, runWorkers);
        services.AddSingleton(new ArtifactStore(config.ArtifactsDir));
        services.AddSingleton<RunRecorder>();
        services.AddSingleton(config.Sinks);
        services.AddSingleton(sp => new SinkSet(config, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton(sp => CreateNotifier(config, queue, sp.GetRequiredService<SinkSet>(), sp.GetRequiredService<ILoggerFactory>()));
        // Before the pool: hosts stop services in reverse order, so deliveries drain after the last job ended.
        services.AddHostedService<SinkDrainService>();
        services.AddSingleton<IModelGateway>(sp => new ModelGatewayServer(
            config.Gateway, new EgressPolicy(config.Pipeline.Egress.AllowCidrs, config.Pipeline.Egress.Resolve), vendor => VendorKey(config, vendor),
            sp.GetRequiredService<IJobMetrics>(), sp.GetRequiredService<ILogger<ModelGatewayServer>>()));
        services.AddSingleton<JobRunner>();
        if (runWorkers)
            services.AddHostedService<WorkerPool>();
        if (link)
            services.AddOrchestratorLink(config.Orchestration.Link, config.Orchestration.Tools);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = config.Pipeline.ShutdownGrace + TimeSpan.FromSeconds(15));
        return services;
    }

    /// <summary>
    /// A vendor's real key, for the gateway only: the setting of that name where there is one (OPENAI_API_KEY,
    /// ANTHROPIC_API_KEY, OPENROUTER_API_KEY: from the environment, a flag or the config file), else the worker's variable.
    /// </summary>
    private static string? VendorKey(WorkerConfig config, ModelVendor vendor) => vendor.KeyVariable is not { } name
        ? null
        : Settings.All.FirstOrDefault(s => s.Env.Contains(name)) is { } setting ? config.Values.Get(setting) : Environment.GetEnvironmentVariable(name);

    public static JobNotifier CreateNotifier(WorkerConfig config, IJobQueue queue, SinkSet sinks, ILoggerFactory loggers) =>
        new(queue, sinks.Sinks, config.Sinks, TimeProvider.System, loggers.CreateLogger<JobNotifier>());

    /// <summary>
    /// The configured sandbox. Bubblewrap that cannot run here stops startup with a message that says how to fix it;
    /// `none` is only ever what the operator asked for.
    /// </summary>
    public static ISandbox CreateSandbox(WorkerConfig config)
    {
        if (config.Sandbox.Kind == SandboxOptions.None)
            return new NoSandbox();
        try
        {
            return new BubblewrapSandbox(config.Sandbox, Cgroups.Detect(), [AppContext.BaseDirectory.TrimEnd('/')], SelfCommand());
        }
        catch (SandboxException e)
        {
            throw config.Values.Invalid(Settings.Sandbox, e.Message);
        }
    }

    /// <summary>Where the .NET runtime lives, so built-in agents (and the mcp_only relay) start inside the sandbox.</summary>
    public static IReadOnlyDictionary<string, string> AgentVariables()
    {
        // .../dotnet/shared/Microsoft.NETCore.App/<version>/
        var runtime = new DirectoryInfo(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory());
        var root = runtime.Parent?.Parent?.Parent?.FullName;
        return root is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["DOTNET_ROOT"] = root };
    }

    /// <summary>JSON lines (one object per event, job id in the scope) unless text was asked for or stdout is a terminal.</summary>
    public static ILoggingBuilder AddWorkerLogging(this ILoggingBuilder logging, WorkerConfig config, LogLevel? floor = null)
    {
        logging.ClearProviders();
        var level = floor is { } f && f > config.LogLevel ? f : config.LogLevel;
        logging.SetMinimumLevel(level);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", level > LogLevel.Information ? level : LogLevel.Information);
        var toFile = config.LogOutput is not ("stdout" or "stderr");
        if (toFile)
            Console.SetOut(OpenLogFile(config));
        // Everything to stderr, or nothing (the console logger splits by level otherwise).
        logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = config.LogOutput == "stderr" ? LogLevel.Trace : LogLevel.None);
        var terminal = config.LogOutput == "stderr" ? !Console.IsErrorRedirected : !toFile && !Console.IsOutputRedirected;
        var json = config.LogFormat == "json" || (config.LogFormat == "auto" && !terminal);
        if (json)
        {
            logging.AddJsonConsole(o =>
            {
                o.IncludeScopes = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.IncludeScopes = true;
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
                o.ColorBehavior = terminal ? LoggerColorBehavior.Default : LoggerColorBehavior.Disabled;
            });
        }
        return logging;
    }

    /// <summary>--log-output PATH: the console logger writes to stdout, so stdout becomes the file (appended).</summary>
    private static StreamWriter OpenLogFile(WorkerConfig config)
    {
        try
        {
            return new StreamWriter(new FileStream(config.LogOutput, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw config.Values.Invalid(Settings.LogOutput, $"cannot open {config.LogOutput}: {e.Message}");
        }
    }
}
