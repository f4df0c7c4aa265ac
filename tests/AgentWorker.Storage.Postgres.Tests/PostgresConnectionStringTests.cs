namespace AgentWorker.Storage.Postgres.Tests;

public sealed class PostgresConnectionStringTests
{
    [Fact]
    public void Parse_Url_ReadsEveryPartAndDecodesCredentials()
    {
        var settings = PostgresConnectionString.Parse("postgresql://agent%40x:p%3Ass%2Fw@db.example.test:6543/queue_db?sslmode=require&application_name=worker");

        Assert.Equal(
            ("db.example.test", 6543, "agent@x", "p:ss/w", "queue_db", "worker"),
            (settings.Host, settings.Port, settings.Username, settings.Password, settings.Database, settings.ApplicationName));
        Assert.Equal(Npgsql.SslMode.Require, settings.SslMode);
    }

    [Fact]
    public void Parse_ShortSchemeWithoutPortOrPassword_UsesDefaults()
    {
        var settings = PostgresConnectionString.Parse("postgres://postgres@127.0.0.1/agent_worker_test");

        Assert.Equal(("127.0.0.1", 5432, "postgres", null, "agent_worker_test"), (settings.Host, settings.Port, settings.Username, settings.Password, settings.Database));
    }

    [Fact]
    public void Parse_KeyValuePairs_PassesThemThrough()
    {
        var settings = PostgresConnectionString.Parse("Host=localhost;Port=5433;Username=u;Password=secret;Database=d");

        Assert.Equal(("localhost", 5433, "u", "secret", "d"), (settings.Host, settings.Port, settings.Username, settings.Password, settings.Database));
    }

    [Theory]
    [InlineData("postgresql://user:hunter2@db/x?no_such_setting=1")]
    [InlineData("postgresql://user:hunter2@/x")]
    [InlineData("Host=db;Password=hunter2;Bogus Key=1")]
    public void Parse_Invalid_ThrowsWithoutRepeatingThePassword(string connectionString)
    {
        var error = Assert.Throws<ArgumentException>(() => PostgresConnectionString.Parse(connectionString));

        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
    }
}
