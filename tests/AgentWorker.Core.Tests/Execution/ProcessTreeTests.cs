using System.Diagnostics;
using AgentWorker.Core.Execution;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Execution;

public sealed class ProcessTreeTests
{
    [Fact]
    public async Task KillOrphans_KillsProcessesOfDeadOwnersOnly()
    {
        using var orphan = Sleep(owner: "999999999:1");
        using var ours = Sleep(owner: ProcessTree.Owner);
        try
        {
            Assert.True(ProcessTree.KillOrphans() >= 1);

            await orphan.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(Processes.IsAlive(ours.Id), "a process of this live worker was killed");
        }
        finally
        {
            ours.Kill();
        }
    }

    private static Process Sleep(string owner)
    {
        var start = new ProcessStartInfo("sleep", "300");
        start.Environment[ProcessTree.OwnerVariable] = owner;
        return Process.Start(start)!;
    }
}
