using AgentWorker.Configuration;

namespace AgentWorker.Tests.Configuration;

/// <summary>The seed integrations' settings: defaults, seed names, and startup errors that name the setting.</summary>
public sealed class IntegrationConfigTests
{
    private const string Pg = "postgresql://u:p@127.0.0.1:5/db";

    private static WorkerConfig Load(Dictionary<string, string>? flags = null, Dictionary<string, string>? env = null) =>
        WorkerConfigTests.Load(flags, env);

    private static string Error(Dictionary<string, string>? flags = null, Dictionary<string, string>? env = null) =>
        Assert.Throws<ConfigException>(() => Load(flags, env)).Message;

    [Fact]
    public void Load_Defaults_NoIntegrations()
    {
        var integrations = Load().Integrations;

        Assert.Equal("http", integrations.Intake);
        Assert.Null(integrations.S3);
        Assert.Null(integrations.AllocatorUrl);
        Assert.Equal(TimeSpan.FromSeconds(5), integrations.PollInterval);
        Assert.Equal(TimeSpan.FromSeconds(300), integrations.TaskTimeout);
        Assert.Equal("https://openrouter.ai/api/v1", integrations.Llm.BaseUrl.AbsoluteUri);
    }

    [Fact]
    public void Load_SeedNames_ConfigureTasksS3AndAllocator()
    {
        var config = Load(env: new()
        {
            ["POSTGRES_DSN"] = Pg, ["AGENT_ID"] = "agent1", ["POLL_INTERVAL_SECONDS"] = "2", ["RUN_TASK_TIMEOUT_SECONDS"] = "60",
            ["MINIO_ENDPOINT"] = "minio:9000", ["MINIO_ACCESS_KEY"] = "minioadmin", ["MINIO_SECRET_KEY"] = "minioadmin", ["MINIO_SECURE"] = "yes",
            ["ALLOCATOR_API_URL"] = "http://localhost:8080", ["AGENT_WORKER_INTAKE"] = "postgres-tasks",
        });

        Assert.True(config.Integrations.PollsTasks);
        Assert.Equal("sqlite", config.Backend);
        Assert.Equal(("agent1", 2.0, 60.0), (config.Integrations.AgentId, config.Integrations.PollInterval.TotalSeconds, config.Integrations.TaskTimeout.TotalSeconds));
        Assert.Equal("https://minio:9000/", config.Integrations.S3!.ServiceUrl.AbsoluteUri);
        Assert.Equal("screenshots", config.Integrations.S3.Bucket);
        Assert.Equal("http://localhost:8080/", config.Integrations.AllocatorUrl!.AbsoluteUri);
        // The MinIO secret is one of the values masked in everything stored.
        Assert.Equal("***", config.Pipeline.Redactor.Redact("minioadmin"));
    }

    [Fact]
    public void Load_InvalidValues_NameTheSetting()
    {
        Assert.Contains("--agent-id / AGENT_ID", Error(flags: new() { ["--intake"] = "postgres-tasks", ["--postgres-url"] = Pg }));
        Assert.Contains("--intake / AGENT_WORKER_INTAKE", Error(flags: new() { ["--intake"] = "postgres-tasks", ["--agent-id"] = "1" }));
        Assert.Contains("--intake / AGENT_WORKER_INTAKE", Error(flags: new() { ["--intake"] = "kafka" }));
        Assert.Contains("--agent-id / AGENT_ID", Error(env: new() { ["AGENT_ID"] = "a/b" }));
        Assert.Contains("--poll-interval / POLL_INTERVAL_SECONDS", Error(env: new() { ["POLL_INTERVAL_SECONDS"] = "0" }));
        Assert.Contains("--minio-access-key / MINIO_ACCESS_KEY", Error(env: new() { ["MINIO_ENDPOINT"] = "127.0.0.1:9000" }));
        Assert.Contains("--minio-secure / MINIO_SECURE", Error(env: new() { ["MINIO_ENDPOINT"] = "h:1", ["MINIO_ACCESS_KEY"] = "a", ["MINIO_SECRET_KEY"] = "b", ["MINIO_SECURE"] = "maybe" }));
        Assert.Contains("--minio-bucket / MINIO_BUCKET", Error(env: new() { ["MINIO_ENDPOINT"] = "h:1", ["MINIO_ACCESS_KEY"] = "a", ["MINIO_SECRET_KEY"] = "b", ["MINIO_BUCKET"] = "Bad_Bucket" }));
        Assert.Contains("--minio-endpoint / MINIO_ENDPOINT", Error(env: new() { ["MINIO_ENDPOINT"] = "ftp://h:1", ["MINIO_ACCESS_KEY"] = "a", ["MINIO_SECRET_KEY"] = "b" }));
        Assert.Contains("--allocator-api-url / ALLOCATOR_API_URL", Error(env: new() { ["ALLOCATOR_API_URL"] = "not a url" }));
        Assert.Contains("--allocator-api-url / ALLOCATOR_API_URL", Error(env: new() { ["ALLOCATOR_API_URL"] = "http://user:pw@host/" }));
        Assert.Contains("--llm-base-url / LLM_BASE_URL", Error(env: new() { ["LLM_BASE_URL"] = "openrouter" }));
    }
}
