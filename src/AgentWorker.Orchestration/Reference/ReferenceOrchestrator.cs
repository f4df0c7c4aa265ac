using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Orchestration.Reference;

/// <summary>Where the reference orchestrator listens and how large its messages may be.</summary>
public sealed record ReferenceOrchestratorOptions
{
    public required OrchestratorAddress Listen { get; init; }
    public int MaxReceiveMessageBytes { get; init; } = 100 * 1024 * 1024;
    public int MaxSendMessageBytes { get; init; } = 100 * 1024 * 1024;
}

/// <summary>
/// A small orchestrator (<c>agent-worker orchestrator serve</c>): registers workers, tracks their heartbeats,
/// routes submitted tasks to them and forwards cancels. Enough to run and test the link without another product.
/// </summary>
public static partial class ReferenceOrchestrator
{
    public static WebApplication Build(ReferenceOrchestratorOptions options, Action<ILoggingBuilder> logging)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        logging(builder.Logging);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<WorkerRegistry>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = options.MaxReceiveMessageBytes;
            o.MaxSendMessageSize = options.MaxSendMessageBytes;
            o.EnableDetailedErrors = true;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Messages are bounded by the gRPC limits above, not by Kestrel's request body limit.
            kestrel.Limits.MaxRequestBodySize = null;
            if (options.Listen.SocketPath is { } path)
            {
                ClearStaleSocket(path);
                kestrel.ListenUnixSocket(path, o => o.Protocols = HttpProtocols.Http2);
            }
            else
            {
                kestrel.Listen(options.Listen.ListenEndPoint(), o => o.Protocols = HttpProtocols.Http2);
            }
        });
        var app = builder.Build();
        app.MapGrpcService<OrchestratorService>();
        app.MapGrpcService<ControlService>();
        app.Lifetime.ApplicationStarted.Register(() =>
            LogListening(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("AgentWorker.Orchestrator"), options.Listen.Text));
        if (options.Listen.SocketPath is { } socket)
            app.Lifetime.ApplicationStopped.Register(() => File.Delete(socket));
        return app;
    }

    /// <summary>A socket file nobody answers on is left from a process that died; one that answers belongs to a live orchestrator.</summary>
    private static void ClearStaleSocket(string path)
    {
        if (!File.Exists(path))
            return;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            File.Delete(path);
            return;
        }
        throw new IOException($"another process is listening on {path}");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Orchestrator listening on {Address}")]
    private static partial void LogListening(ILogger logger, string address);
}
