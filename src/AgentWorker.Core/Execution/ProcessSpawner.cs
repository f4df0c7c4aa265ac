using System.Collections.Concurrent;
using System.Diagnostics;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Starts child processes from one long-lived thread. Linux delivers a parent-death signal (bubblewrap's
/// --die-with-parent) when the <em>thread</em> that forked the child exits; thread-pool threads retire when
/// idle, which would kill a healthy sandbox mid-job.
/// </summary>
internal static class ProcessSpawner
{
    private static readonly BlockingCollection<(Process Process, TaskCompletionSource Started)> Requests = [];

    static ProcessSpawner()
    {
        var thread = new Thread(() =>
        {
            foreach (var (process, started) in Requests.GetConsumingEnumerable())
            {
                try
                {
                    process.Start();
                    started.SetResult();
                }
                catch (Exception e)
                {
                    started.SetException(e);
                }
            }
        })
        {
            IsBackground = true,
            Name = "agent-worker process spawner",
        };
        thread.Start();
    }

    public static Task StartAsync(Process process)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Requests.Add((process, started));
        return started.Task;
    }
}
