using Microsoft.Extensions.Hosting;

namespace AgentWorker.Core.Sinks;

/// <summary>
/// On shutdown, gives pending deliveries <see cref="SinkOptions.DrainTimeout"/> to finish. Registered before the worker
/// pool, so it stops after it (hosts stop services in reverse order) and the pool's last state changes go out too.
/// </summary>
public sealed class SinkDrainService(JobNotifier notifier, SinkOptions options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => notifier.DrainAsync(options.DrainTimeout);
}
