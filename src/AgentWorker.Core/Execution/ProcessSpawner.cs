using System.Collections.Concurrent;
using System.Diagnostics;
using AgentWorker.Core.Sandbox;
using Microsoft.Win32.SafeHandles;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Starts child processes from one long-lived thread. Linux delivers a parent-death signal (bubblewrap's
/// --die-with-parent) when the <em>thread</em> that forked the child exits; thread-pool threads retire when
/// idle, which would kill a healthy sandbox mid-job. A process to start in a run's own network namespace is forked while
/// this thread is in it (the child inherits the thread's namespace); the thread goes back to the worker's right after.
/// </summary>
internal static class ProcessSpawner
{
    private static readonly BlockingCollection<(Process Process, SafeFileHandle? Namespace, TaskCompletionSource Started)> Requests = [];

    static ProcessSpawner()
    {
        var thread = new Thread(() =>
        {
            SafeFileHandle? home = null;
            foreach (var (process, netns, started) in Requests.GetConsumingEnumerable())
            {
                try
                {
                    if (netns is null)
                    {
                        process.Start();
                    }
                    else
                    {
                        home ??= NetworkNamespace.OfThisThread();
                        NetworkNamespace.Enter(netns);
                        try
                        {
                            process.Start();
                        }
                        finally
                        {
                            Return(home);
                        }
                    }
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

    /// <summary>Starts <paramref name="process"/>, in the network namespace <paramref name="netns"/> refers to when it is given.</summary>
    public static Task StartAsync(Process process, SafeFileHandle? netns = null)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Requests.Add((process, netns, started));
        return started.Task;
    }

    /// <summary>Every later process (git, every other agent) would start in the agent's empty namespace: better to stop.</summary>
    private static void Return(SafeFileHandle home)
    {
        try
        {
            NetworkNamespace.Enter(home);
        }
        catch (SandboxException e)
        {
            Environment.FailFast($"agent-worker: the process spawner cannot return to the worker's network namespace: {e.Message}");
        }
    }
}
