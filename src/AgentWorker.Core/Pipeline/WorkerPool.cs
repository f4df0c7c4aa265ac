using AgentWorker.Core.Execution;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Pipeline;

/// <summary>
/// N worker slots, each leasing and running one job at a time. On shutdown it stops leasing at once,
/// lets running jobs go on for the grace period, then stops them and hands them back to the queue.
/// A backend outage stops nothing: slots wait it out with backoff (<see cref="BackendRetry"/>) and lease again.
/// </summary>
public sealed partial class WorkerPool(
    IJobQueue queue,
    JobRunner runner,
    WorkspaceManager workspaces,
    BackendRetry retry,
    PipelineOptions options,
    TimeProvider timeProvider,
    ILogger<WorkerPool> logger) : BackgroundService
{
    private static readonly TimeSpan LeaseErrorDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan JanitorInterval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var (orphans, swept) = CleanUp();
        LogStarting(logger, options.Slots, queue.Backend, options.WorkerId, swept, orphans);
        using var hardStop = new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
        await using var registration = stoppingToken.Register(() => hardStop.CancelAfter(options.ShutdownGrace));
        var slots = Enumerable.Range(0, options.Slots).Select(_ => Task.Run(() => SlotAsync(stoppingToken, hardStop.Token), CancellationToken.None));
        await Task.WhenAll([.. slots, JanitorAsync(stoppingToken)]).ConfigureAwait(false);
        LogStopped(logger);
    }

    /// <summary>Kills agents orphaned by workers that died on this host and removes their workspaces.</summary>
    private (int Orphans, int Workspaces) CleanUp() => (ProcessTree.KillOrphans(), workspaces.SweepStale());

    private async Task JanitorAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(JanitorInterval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                var (orphans, swept) = CleanUp();
                if (orphans + swept > 0)
                    LogCleanedUp(logger, orphans, swept);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SlotAsync(CancellationToken stopping, CancellationToken hardStop)
    {
        while (!stopping.IsCancellationRequested)
        {
            IJobLease? lease;
            try
            {
                // Through a backend outage this keeps trying with backoff, so the slot is back at work soon after the backend is.
                lease = await retry.UntilAvailableAsync(token => queue.LeaseAsync(options.WorkerId, options.LeaseWait, token), stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Not an outage (those are waited out above) but a bug or a bad record: look again after a pause.
                LogLeaseFailed(logger, e, queue.Backend);
                try
                {
                    await Task.Delay(LeaseErrorDelay, timeProvider, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            if (lease is null)
                continue;
            try
            {
                await runner.RunAsync(lease, hardStop).ConfigureAwait(false);
            }
            finally
            {
                await HandBackAsync(lease).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Disposes the lease, which hands the job back unless the attempt ended it; a failure to do so leaves the job to lease expiry.</summary>
    private async Task HandBackAsync(IJobLease lease)
    {
        try
        {
            await lease.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogHandBackFailed(logger, e, lease.Job.Id);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {WorkerId} starting {Slots} slot(s) on {Backend}; removed {Swept} stale workspace(s), killed {Orphans} orphaned agent process(es)")]
    private static partial void LogStarting(ILogger logger, int slots, string backend, string workerId, int swept, int orphans);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killed {Orphans} orphaned agent process(es) and removed {Swept} stale workspace(s) left by dead workers")]
    private static partial void LogCleanedUp(ILogger logger, int orphans, int swept);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker slots stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Leasing from {Backend} failed; retrying")]
    private static partial void LogLeaseFailed(ILogger logger, Exception exception, string backend);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: could not hand the job back; it runs again once its lease expires")]
    private static partial void LogHandBackFailed(ILogger logger, Exception exception, string jobId);
}
