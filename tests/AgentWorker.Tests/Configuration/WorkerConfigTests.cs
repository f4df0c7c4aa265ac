using System.Net;
using AgentWorker.Configuration;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Configuration;

public sealed class WorkerConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    internal static WorkerConfig Load(Dictionary<string, string>? flags = null, Dictionary<string, string>? env = null) =>
        WorkerConfig.Load(ConfigValues.Resolve(
            (flags ?? []).ToDictionary(f => Settings.All.Single(s => s.Flag == f.Key), f => (string?)f.Value),
            name => env?.GetValueOrDefault(name)));

    [Fact]
    public void Load_Precedence_FlagOverEnvOverFileOverDefault()
    {
        var file = _dir.Combine("config.yaml");
        File.WriteAllText(file, "port: 4100\nworkers: 7\nmaxQueueDepth: 9\n");

        var config = Load(
            flags: new() { ["--config"] = file, ["--port"] = "4300" },
            env: new() { ["PORT"] = "4200", ["WORKERS"] = "5" });

        Assert.Equal(4300, config.Port);
        Assert.Equal(5, config.Pipeline.Slots);
        Assert.Equal(9, config.MaxQueueDepth);
        Assert.Equal(30, config.RateLimitPerMinute);
    }

    [Fact]
    public void Load_SeedVariableNames_AreHonoured()
    {
        var config = Load(env: new()
        {
            ["AGENT_WEBHOOK_SECRET"] = "dev_secret_value",
            ["WORK_DIR"] = _dir.Combine("w"),
            ["LOG_LEVEL"] = "debug",
            ["GITHUB_TOKEN"] = "ghp_example_token_value",
        });

        Assert.Equal("dev_secret_value", config.ApiKey);
        Assert.Equal(_dir.Combine("w"), config.Workspace.WorkDir);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, config.LogLevel);
        Assert.Equal("ghp_example_token_value", config.Workspace.GitToken);
        Assert.Equal(IPAddress.Any, config.ListenAddress);
    }

    [Fact]
    public void Load_Backend_FollowsPostgresUrlUnlessChosen()
    {
        Assert.Equal("sqlite", Load().Backend);
        Assert.Equal("postgres", Load(env: new() { ["POSTGRES_DSN"] = "postgresql://u:p@127.0.0.1:5/db" }).Backend);
        Assert.Equal("sqlite", Load(flags: new() { ["--backend"] = "sqlite" }, env: new() { ["POSTGRES_URL"] = "postgresql://u:p@127.0.0.1:5/db" }).Backend);
        var e = Assert.Throws<ConfigException>(() => Load(flags: new() { ["--backend"] = "postgres" }));
        Assert.Contains("--postgres-url / POSTGRES_URL", e.Message, StringComparison.Ordinal);
        Assert.Equal("redis", Load(env: new() { ["REDIS_URL"] = "redis://127.0.0.1:6" }).Backend);
        Assert.Contains("--redis-url / REDIS_URL", Assert.Throws<ConfigException>(() => Load(flags: new() { ["--backend"] = "redis" })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NoApiKey_ListensOnLoopbackOnly()
    {
        Assert.Equal(IPAddress.Loopback, Load().ListenAddress);
        var e = Assert.Throws<ConfigException>(() => Load(flags: new() { ["--host"] = "0.0.0.0" }));
        Assert.Contains("--host", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("PORT", "http", "--port / PORT (from environment PORT)")]
    [InlineData("WORKERS", "0", "--workers / WORKERS")]
    [InlineData("LEASE_SECONDS", "nope", "--lease-seconds / LEASE_SECONDS")]
    [InlineData("LOG_LEVEL", "loud", "--log-level / LOG_LEVEL")]
    [InlineData("WORKER_API_KEY", "short", "--api-key / WORKER_API_KEY")]
    [InlineData("HEARTBEAT_SECONDS", "60", "--heartbeat-seconds / HEARTBEAT_SECONDS")]
    [InlineData("AGENTS_FILE", "/no/such/agents.yaml", "--agents / AGENTS_FILE")]
    [InlineData("AGENT_WORKER_BACKEND", "mongodb", "--backend / AGENT_WORKER_BACKEND")]
    [InlineData("SANDBOX", "docker", "--sandbox / SANDBOX")]
    [InlineData("SANDBOX_MEMORY_MB", "lots", "--sandbox-memory-mb / SANDBOX_MEMORY_MB")]
    [InlineData("SANDBOX_CPUS", "0", "--sandbox-cpus / SANDBOX_CPUS")]
    [InlineData("WORKSPACE_TMPFS", "maybe", "--workspace-tmpfs / WORKSPACE_TMPFS")]
    [InlineData("SANDBOX_HOME_MB", "0", "--sandbox-home-mb / SANDBOX_HOME_MB")]
    [InlineData("LOCAL_REPO_ROOTS", "/srv/git,relative/repos", "--local-repo-roots / LOCAL_REPO_ROOTS")]
    public void Load_InvalidValue_NamesTheSetting(string variable, string value, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Load(env: new() { [variable] = value }));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_RootWorker_ReadsLocalRepositoriesAsTheSandboxUser_UnlessThereIsNoSandbox()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test covers the root worker (the CI case)");

        var sandboxed = Load(env: new() { ["SANDBOX_UID"] = "4242", ["LOCAL_REPO_ROOTS"] = "/srv/git, /home/git" });
        var unsandboxed = Load(env: new() { ["SANDBOX"] = "none" });

        Assert.Equal(4242, sandboxed.Workspace.LocalReaderUid);
        Assert.Equal(["/srv/git", "/home/git"], sandboxed.Workspace.LocalRepoRoots);
        Assert.Contains(sandboxed.DataDir, sandboxed.Workspace.PrivatePaths);
        Assert.NotNull(sandboxed.Workspace.RunFilesystem);
        Assert.Null(unsandboxed.Workspace.LocalReaderUid);
        Assert.Null(Load(env: new() { ["WORKSPACE_TMPFS"] = "off" }).Workspace.RunFilesystem);
    }

    [Fact]
    public void Load_ConfigFileWithUnknownKey_NamesFileAndKey()
    {
        var file = _dir.Combine("bad.yaml");
        File.WriteAllText(file, "prot: 1\n");

        var e = Assert.Throws<ConfigException>(() => Load(flags: new() { ["--config"] = file }));

        Assert.Contains("unknown key 'prot'", e.Message, StringComparison.Ordinal);
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SecretSettings_AreMaskedByTheRedactor()
    {
        var config = Load(env: new() { ["WORKER_API_KEY"] = "key-1234567890", ["GIT_TOKEN"] = "tok-abcd" });

        Assert.Equal("a *** b *** c", config.Pipeline.Redactor.Redact("a key-1234567890 b tok-abcd c"));
    }

    public void Dispose() => _dir.Dispose();
}
