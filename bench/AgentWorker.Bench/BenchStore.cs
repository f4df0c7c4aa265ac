using AgentWorker.Core.Queue;
using AgentWorker.Storage.Postgres;
using AgentWorker.Storage.Redis;
using AgentWorker.Storage.Sqlite;
using Npgsql;
using StackExchange.Redis;

namespace AgentWorker.Bench;

/// <summary>
/// A fresh, empty queue on one backend with product defaults (nothing tuned for the bench), and its removal
/// afterwards: a new SQLite file in a new directory, a new Redis queue name, a new PostgreSQL schema.
/// </summary>
internal abstract class BenchStore : IAsyncDisposable
{
    public abstract string Backend { get; }

    /// <summary>A client on this store; more than one is how a second process would see it.</summary>
    public abstract Task<IJobQueue> OpenAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>
    /// After a bulk load, lets the store reach the state it settles in by itself before the measure starts, so the
    /// measure sees steady state rather than the load's aftermath: for PostgreSQL the VACUUM ANALYZE autovacuum would
    /// run on the freshly loaded tables (visibility map, hint bits, planner statistics); the others need nothing.
    /// </summary>
    public virtual Task SettleAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <param name="backend"><c>sqlite</c>, <c>redis</c> or <c>postgres</c>.</param>
    /// <param name="location">A directory for SQLite, a server URL for the others.</param>
    public static BenchStore Create(string backend, string location) => backend switch
    {
        "sqlite" => new SqliteStore(location),
        "redis" => new RedisStore(location),
        "postgres" => new PostgresStore(location),
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "unknown backend"),
    };

    private static string NewName() => $"bench_{Guid.NewGuid():N}"[..20];

    private sealed class SqliteStore(string dataDir) : BenchStore
    {
        // A fresh directory per run: an empty database, and nothing of ours left behind to delete by pattern.
        private readonly string directory = Path.Combine(dataDir, $"agent-worker-bench-{Guid.NewGuid():N}");

        public override string Backend => "sqlite";

        public override async Task<IJobQueue> OpenAsync(CancellationToken cancellationToken) =>
            await SqliteJobQueue.OpenAsync(Path.Combine(directory, "queue.db"), new QueueOptions(), TimeProvider.System, cancellationToken);

        public override ValueTask DisposeAsync()
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class RedisStore(string url) : BenchStore
    {
        private readonly string name = NewName();

        public override string Backend => "redis";

        public override async Task<IJobQueue> OpenAsync(CancellationToken cancellationToken) =>
            await RedisJobQueue.OpenAsync(url, name, new QueueOptions(), TimeProvider.System, cancellationToken);

        public override async ValueTask DisposeAsync()
        {
            // The queue's keys all carry its name (see RedisKeys); the server may be someone's own, so only those go.
            await using var connection = await ConnectionMultiplexer.ConnectAsync(RedisConnection.Parse(url));
            var database = connection.GetDatabase();
            foreach (var server in connection.GetServers())
            {
                var batch = new List<RedisKey>();
                await foreach (var key in server.KeysAsync(database.Database, pattern: $"*{name}*", pageSize: 1000))
                {
                    batch.Add(key);
                    if (batch.Count == 1000)
                    {
                        await database.KeyDeleteAsync([.. batch]);
                        batch.Clear();
                    }
                }
                if (batch.Count > 0)
                    await database.KeyDeleteAsync([.. batch]);
            }
        }
    }

    private sealed class PostgresStore(string url) : BenchStore
    {
        private readonly string schema = NewName();

        public override string Backend => "postgres";

        public override async Task<IJobQueue> OpenAsync(CancellationToken cancellationToken) =>
            await PostgresJobQueue.OpenAsync(url, schema, new QueueOptions(), TimeProvider.System, cancellationToken);

        public override async ValueTask DisposeAsync()
        {
            await using var dataSource = NpgsqlDataSource.Create(PostgresConnectionString.Parse(url));
            await using var command = dataSource.CreateCommand($"""DROP SCHEMA IF EXISTS "{schema}" CASCADE""");
            await command.ExecuteNonQueryAsync();
        }

        public override async Task SettleAsync(CancellationToken cancellationToken)
        {
            await using var dataSource = NpgsqlDataSource.Create(PostgresConnectionString.Parse(url));
            foreach (var table in new[] { "jobs", "job_attempts", "job_events" })
            {
                await using var command = dataSource.CreateCommand($"""VACUUM (ANALYZE) "{schema}".{table}""");
                command.CommandTimeout = 0;
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }
}
