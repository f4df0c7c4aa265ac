using AgentWorker.Core.Queue;
using AgentWorker.Storage.ContractTests;

namespace AgentWorker.Storage.Postgres.Tests;

/// <summary>The queue contract on the real server, each queue on a fresh schema dropped afterwards.</summary>
public sealed class PostgresJobQueueContractTests : JobQueueContractTests
{
    private readonly Dictionary<IJobQueue, string> schemas = [];

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        foreach (var schema in schemas.Values.Distinct())
            await PostgresServer.DropSchemaAsync(schema);
    }

    protected override async Task<IJobQueue> CreateQueueAsync(QueueOptions options, TimeProvider timeProvider)
    {
        var schema = PostgresServer.NewSchemaName();
        var queue = await PostgresJobQueue.OpenAsync(PostgresServer.Url, schema, options, timeProvider, Token);
        schemas[queue] = schema;
        return queue;
    }

    protected override async Task<IJobQueue> CreateSecondClientAsync(IJobQueue first, QueueOptions options, TimeProvider timeProvider)
    {
        var schema = schemas[first];
        var queue = await PostgresJobQueue.OpenAsync(PostgresServer.Url, schema, options, timeProvider, Token);
        schemas[queue] = schema;
        return queue;
    }
}
