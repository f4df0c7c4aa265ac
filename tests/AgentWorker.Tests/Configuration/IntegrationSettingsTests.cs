using AgentWorker.Configuration;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Configuration;

/// <summary>Settings of the sinks, artifacts and git remotes: parsed into the pipeline's options, bad values named.</summary>
public sealed class IntegrationSettingsTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private static WorkerConfig Load(Dictionary<string, string> env) =>
        WorkerConfig.Load(ConfigValues.Resolve(new Dictionary<Setting, string?>(), name => env.GetValueOrDefault(name)));

    [Fact]
    public void Load_Integrations_ReachTheirOptions()
    {
        File.WriteAllText(_dir.Combine("id_ed25519"), "key");
        File.WriteAllText(_dir.Combine("known_hosts"), "hosts");

        var config = Load(new()
        {
            ["WEBHOOK_URL"] = "https://hooks.example/a?token=1, http://127.0.0.1:9/b",
            ["WEBHOOK_SECRET"] = "0123456789abcdef",
            ["RESULTS_TABLE"] = "reports.audit_results",
            ["POSTGRES_URL"] = "postgresql://u@127.0.0.1:5/db",
            ["SINK_MAX_ATTEMPTS"] = "4",
            ["GIT_SSH_KEY_FILE"] = _dir.Combine("id_ed25519"),
            ["GIT_SSH_KNOWN_HOSTS"] = _dir.Combine("known_hosts"),
            ["GIT_AUTHOR_NAME"] = "Review Bot",
            ["MAX_ARTIFACT_MB"] = "5",
            ["MAX_DIFF_MB"] = "7",
        });

        Assert.Equal(["https://hooks.example/a?token=1", "http://127.0.0.1:9/b"], config.WebhookUrls.Select(u => u.ToString()));
        Assert.Equal(("reports.audit_results", "postgresql://u@127.0.0.1:5/db"), config.Results);
        Assert.Equal(4, config.Sinks.MaxAttempts);
        Assert.Equal((_dir.Combine("id_ed25519"), _dir.Combine("known_hosts"), "yes"), (config.Workspace.SshKeyFile, config.Workspace.SshKnownHostsFile, config.Workspace.SshStrictHostKeyChecking));
        Assert.Equal(("Review Bot", "agent-worker@localhost"), (config.Workspace.CommitAuthorName, config.Workspace.CommitAuthorEmail));
        Assert.Equal((5L * 1024 * 1024, 7L * 1024 * 1024), (config.Pipeline.MaxArtifactBytes, config.Pipeline.MaxDiffBytes));
        // Agents never see the key or known_hosts, even where they lie under a visible directory.
        Assert.Contains(_dir.Combine("id_ed25519"), config.Sandbox.HiddenPaths);
        Assert.Contains(_dir.Combine("known_hosts"), config.Sandbox.HiddenPaths);
        Assert.Equal("*** and ***", config.Pipeline.Redactor.Redact("0123456789abcdef and https://hooks.example/a?token=1, http://127.0.0.1:9/b"));
    }

    [Theory]
    [InlineData("WEBHOOK_URL", "ftp://hooks.example/x", "--webhook-url / WEBHOOK_URL")]
    [InlineData("WEBHOOK_URL", "https://user:pw@hooks.example/x", "must not embed credentials")]
    [InlineData("RESULTS_TABLE", "audit_results", "needs a database")]
    [InlineData("RESULTS_TABLE", "audit-results; drop", "--results-table / RESULTS_TABLE")]
    [InlineData("GIT_SSH_KEY_FILE", "/no/such/key", "--git-ssh-key / GIT_SSH_KEY_FILE")]
    [InlineData("GIT_SSH_STRICT_HOST_KEY_CHECKING", "no", "--git-ssh-strict-host-key-checking")]
    [InlineData("GIT_AUTHOR_EMAIL", "<bot@x>", "--git-author-email / GIT_AUTHOR_EMAIL")]
    [InlineData("SINK_MAX_ATTEMPTS", "0", "--sink-max-attempts / SINK_MAX_ATTEMPTS")]
    public void Load_InvalidValue_NamesTheSetting(string variable, string value, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Load(new() { [variable] = value, ["WEBHOOK_SECRET"] = "0123456789abcdef" }));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("pw@", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("too-short")]
    public void Load_WebhookWithoutAStrongSecret_IsRefused(string? secret)
    {
        var env = new Dictionary<string, string> { ["WEBHOOK_URL"] = "https://hooks.example/x" };
        if (secret is not null)
            env["WEBHOOK_SECRET"] = secret;

        var e = Assert.Throws<ConfigException>(() => Load(env));

        Assert.Contains("--webhook-secret / WEBHOOK_SECRET", e.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _dir.Dispose();
}
