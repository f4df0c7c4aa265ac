namespace AgentWorker.Tests.Sandbox;

/// <summary>An agent that looks for the worker's own state (agents file, queue database, other workspaces) at its host paths.</summary>
public static class WorkerStateProbe
{
    public const string Id = "read-worker-files";

    // A directory covered by an empty tmpfs may list fine; only its entries would be a leak.
    public static HostileAgent Agent(SandboxWorkerFixture fixture) => new(Id, $$"""
        if grep -q {{Id}} "{{fixture.AgentsFile}}"; then echo AGENTS-READ; fi
        ls -A "{{fixture.DataDir}}" | sed 's/^/DATA-ENTRY /'
        if head -c 15 "{{fixture.DataDir}}/queue.db" | grep -q SQLite; then echo QUEUE-READ; fi
        ls -A "{{fixture.WorkDir}}" | sed 's/^/WORKDIR-ENTRY /'
        echo DONE
        """);

    public static void AssertNothingSeen(AgentRun run)
    {
        run.AssertFinished();
        Assert.False(run.Printed("AGENTS-READ"), run.ToString());
        Assert.Empty(run.Values("DATA-ENTRY"));
        Assert.False(run.Printed("QUEUE-READ"), run.ToString());
        Assert.Empty(run.Values("WORKDIR-ENTRY"));
    }
}
