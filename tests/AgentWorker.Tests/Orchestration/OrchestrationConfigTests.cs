using AgentWorker.Configuration;
using AgentWorker.Orchestration;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Orchestration;

/// <summary>The link's flags, WORKER_* variables and config file, with the Go tool worker's names and defaults.</summary>
public sealed class OrchestrationConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private WorkerConfig Load(Dictionary<string, string>? flags = null, Dictionary<string, string>? env = null)
    {
        var environment = new Dictionary<string, string> { ["HOME"] = _dir.Combine("home") };
        foreach (var (name, value) in env ?? [])
            environment[name] = value;
        return WorkerConfig.Load(ConfigValues.Resolve(
            (flags ?? []).ToDictionary(f => Settings.All.Single(s => s.Flag == f.Key), f => (string?)f.Value),
            environment.GetValueOrDefault));
    }

    [Fact]
    public void Load_Defaults_AreTheGoWorkers()
    {
        var config = Load();
        var link = config.Orchestration.Link;

        Assert.Equal("unix:///tmp/agent-worker-grpc.sock", link.Address.Text);
        Assert.Equal("/tmp/agent-worker-grpc.sock", link.Address.SocketPath);
        Assert.Equal($"worker-{Environment.MachineName}", link.Name);
        Assert.Equal(TimeSpan.FromSeconds(30), link.DialTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), link.RpcTimeout);
        Assert.Equal(104_857_600, link.MaxReceiveMessageBytes);
        Assert.Equal(104_857_600, link.MaxSendMessageBytes);
        Assert.Equal(TimeSpan.FromSeconds(5), link.ReconnectInterval);
        Assert.Equal(0, link.ReconnectMaxAttempts);
        Assert.Equal(TimeSpan.FromSeconds(30), link.HeartbeatInterval);
        Assert.Equal("stdout", config.LogOutput);
        Assert.False(config.Orchestration.LinkRequested);
        Assert.Equal(8, config.Orchestration.Tools.Tools.Count);
        var file = config.Orchestration.Tools.Tools["file_read"];
        Assert.Equal((0.1, 64L * 1024 * 1024, 10, TimeSpan.FromSeconds(30)), (file.Cpus, file.MemoryBytes, file.Pids, file.Timeout));
        var fetch = config.Orchestration.Tools.Tools["fetch_url"];
        Assert.Equal((0.2, 128L * 1024 * 1024, 10), (fetch.Cpus, fetch.MemoryBytes, fetch.Pids));
    }

    [Fact]
    public void Load_WorkerVariables_AreHonouredAndFlagsWin()
    {
        var config = Load(
            flags: new() { ["--dial-timeout"] = "1m30s" },
            env: new()
            {
                ["WORKER_ORCHESTRATOR_ADDR"] = "http://127.0.0.1:7000",
                ["WORKER_NAME"] = "w1",
                ["WORKER_DIAL_TIMEOUT"] = "5s",
                ["WORKER_RPC_TIMEOUT"] = "500ms",
                ["WORKER_MAX_RECV_MSG_SIZE"] = "8388608",
                ["WORKER_RECONNECT_INTERVAL"] = "2",
                ["WORKER_RECONNECT_MAX_ATTEMPTS"] = "3",
                ["WORKER_HEARTBEAT_INTERVAL"] = "1h",
                ["WORKER_LOG_LEVEL"] = "debug",
                ["WORKER_LOG_FORMAT"] = "json",
                ["WORKER_LOG_OUTPUT"] = "stderr",
                ["WORKER_TOOLS"] = "grep, list",
            });
        var link = config.Orchestration.Link;

        Assert.Equal(new Uri("http://127.0.0.1:7000"), link.Address.HttpUri);
        Assert.True(config.Orchestration.LinkRequested);
        Assert.Equal("w1", link.Name);
        Assert.Equal(TimeSpan.FromSeconds(90), link.DialTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(500), link.RpcTimeout);
        Assert.Equal(8_388_608, link.MaxReceiveMessageBytes);
        Assert.Equal(TimeSpan.FromSeconds(2), link.ReconnectInterval);
        Assert.Equal(3, link.ReconnectMaxAttempts);
        Assert.Equal(TimeSpan.FromHours(1), link.HeartbeatInterval);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, config.LogLevel);
        Assert.Equal("json", config.LogFormat);
        Assert.Equal("stderr", config.LogOutput);
        Assert.Equal(["grep", "list"], config.Orchestration.Tools.Tools.Keys.Order());
    }

    [Fact]
    public void Load_DefaultConfigFile_IsReadWithToolLimits()
    {
        var file = _dir.Combine("home", ".config", "agent-worker", "config.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, "name: from-file\nreconnectMaxAttempts: 7\ntoolLimits:\n  grep:\n    memoryMb: 256\n    timeoutSeconds: 5\n  fetch_url:\n    maxBytes: 1000\n");

        var config = Load();

        Assert.Equal("from-file", config.Orchestration.Link.Name);
        Assert.Equal(7, config.Orchestration.Link.ReconnectMaxAttempts);
        Assert.Equal(256L * 1024 * 1024, config.Orchestration.Tools.Tools["grep"].MemoryBytes);
        Assert.Equal(TimeSpan.FromSeconds(5), config.Orchestration.Tools.Tools["grep"].Timeout);
        Assert.Equal(20, config.Orchestration.Tools.Tools["grep"].Pids);
        Assert.Equal(1000, config.Orchestration.Tools.Tools["fetch_url"].MaxBytes);
    }

    [Theory]
    [InlineData("--dial-timeout", "soon", "invalid setting --dial-timeout / WORKER_DIAL_TIMEOUT: 'soon' is not a duration")]
    [InlineData("--reconnect-max-attempts", "-1", "invalid setting --reconnect-max-attempts")]
    [InlineData("--max-recv-msg-size", "100", "invalid setting --max-recv-msg-size")]
    [InlineData("--orchestrator-addr", "unix://relative.sock", "invalid setting --orchestrator-addr / WORKER_ORCHESTRATOR_ADDR: 'unix://relative.sock': a unix socket address needs an absolute path")]
    [InlineData("--tools", "grep,shell", "invalid setting --tools / WORKER_TOOLS: unknown tool 'shell'")]
    [InlineData("--web-allow", "localhost", "invalid setting --web-allow / WORKER_WEB_ALLOW: 'localhost' is not an IP address")]
    [InlineData("--web-search-url", "https://search.example/?q=x", "invalid setting --web-search-url / WORKER_WEB_SEARCH_URL: must be an http(s) URL containing {query}")]
    public void Load_BadValue_NamesTheSetting(string flag, string value, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigException>(() => Load(flags: new() { [flag] = value })).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData("toolLimits:\n  shell:\n    pids: 1\n", "toolLimits.shell: unknown tool")]
    [InlineData("toolLimits:\n  grep:\n    disk: 1\n", "toolLimits.grep.disk: unknown limit")]
    [InlineData("toolLimits:\n  grep:\n    pids: many\n", "toolLimits.grep.pids: 'many' is not a number")]
    [InlineData("toolLimits: 3\n", "'toolLimits' must be a map")]
    public void Load_BadToolLimits_NamesTheKey(string yaml, string message)
    {
        var file = _dir.Combine("bad.yaml");
        File.WriteAllText(file, yaml);

        var e = Assert.Throws<ConfigException>(() => Load(flags: new() { ["--config"] = file }));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Contains("--config", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("500ms", 500)]
    [InlineData("1.5h", 5_400_000)]
    [InlineData("2", 2_000)]
    [InlineData("0.25", 250)]
    public void Durations_GoAndPlainSeconds_Parse(string text, double milliseconds)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(milliseconds, value.TotalMilliseconds, 3);
    }

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("10 s")]
    [InlineData("-5s")]
    [InlineData("5d")]
    public void Durations_Other_DoNotParse(string text) => Assert.False(Durations.TryParse(text, out _));

    [Theory]
    [InlineData("unix:///run/o.sock", "/run/o.sock", null)]
    [InlineData("unix:/run/o.sock", "/run/o.sock", null)]
    [InlineData("http://127.0.0.1:9000", null, "http://127.0.0.1:9000/")]
    [InlineData("tcp://10.1.2.3:9000", null, "http://10.1.2.3:9000/")]
    [InlineData("orchestrator.local:9000", null, "http://orchestrator.local:9000/")]
    public void OrchestratorAddress_Parse_UnixAndTcpForms(string text, string? socket, string? uri)
    {
        var address = OrchestratorAddress.Parse(text);

        Assert.Equal(socket, address.SocketPath);
        Assert.Equal(uri, address.HttpUri?.ToString());
    }

    public void Dispose() => _dir.Dispose();
}
