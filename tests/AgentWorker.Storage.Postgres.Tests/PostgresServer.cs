using Npgsql;

namespace AgentWorker.Storage.Postgres.Tests;

/// <summary>The real server the test script started (POSTGRES_URL), and throwaway schemas on it.</summary>
internal static class PostgresServer
{
    private static readonly Lazy<NpgsqlDataSource> Admin = new(() => NpgsqlDataSource.Create(PostgresConnectionString.Parse(Url)));

    public static string Url =>
        Environment.GetEnvironmentVariable("POSTGRES_URL") is { Length: > 0 } url
            ? url
            : throw new InvalidOperationException(
                "POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL cluster, "
                + "or point POSTGRES_URL at a server where the tests may create and drop schemas");

    public static string NewSchemaName() => $"t_{Guid.NewGuid():N}";

    public static async Task DropSchemaAsync(string schema)
    {
        await using var command = Admin.Value.CreateCommand($"""DROP SCHEMA IF EXISTS "{schema}" CASCADE""");
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T?> ScalarAsync<T>(string sql)
    {
        await using var command = Admin.Value.CreateCommand(sql);
        return (T?)await command.ExecuteScalarAsync();
    }
}
