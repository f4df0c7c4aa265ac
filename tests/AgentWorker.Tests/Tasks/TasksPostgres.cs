using AgentWorker.Testing;

namespace AgentWorker.Tests.Tasks;

/// <summary>
/// One PostgreSQL of the tasks-poller tests' own: they stop and start it mid-run, which the shared server from
/// scripts/test.sh must not be.
/// </summary>
public sealed class TasksPostgres : IAsyncLifetime
{
    public PrivatePostgres Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PrivatePostgres.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
