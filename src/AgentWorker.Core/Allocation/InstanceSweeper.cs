using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Allocation;

/// <summary>At start and every 15 s, gives back instances whose job's worker died (see <see cref="InstanceManager.SweepAsync"/>).</summary>
public sealed partial class InstanceSweeper(InstanceManager instances, TimeProvider timeProvider, ILogger<InstanceSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, timeProvider);
        try
        {
            do
            {
                try
                {
                    await instances.SweepAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogSweepFailed(logger, e, instances.Describe);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Returning leftover instances to {Allocator} failed; trying again later")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception, string allocator);
}
