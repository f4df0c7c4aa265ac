using System.Net;
using AgentWorker.Core.Egress;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Configuration;

public sealed class EgressConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private EgressOptions Load(Dictionary<string, string> env)
    {
        env.TryAdd("AGENT_WORKER_DATA", _dir.Combine("data"));
        return WorkerConfigTests.Load(env: env).Pipeline.Egress;
    }

    [Fact]
    public void Load_Defaults_MatchTheDocumentedOnes()
    {
        var egress = Load([]);

        Assert.Empty(egress.AllowCidrs);
        Assert.Empty(egress.Resolve);
        Assert.False(egress.JobsMayAddHosts);
        Assert.Equal(64, egress.MaxConnections);
        Assert.Equal(2048L * 1024 * 1024, egress.MaxBytes);
        Assert.Equal(TimeSpan.FromMinutes(5), egress.IdleTimeout);
    }

    [Fact]
    public void Load_Values_AreParsed()
    {
        var egress = Load(new()
        {
            ["EGRESS_ALLOW_CIDRS"] = "10.20.0.0/16, 127.0.0.2:8443",
            ["EGRESS_RESOLVE"] = "vendor.test:8443:127.0.0.2,gw.test:443:[::1]",
            ["EGRESS_JOBS_MAY_ADD_HOSTS"] = "true",
            ["EGRESS_MAX_CONNECTIONS"] = "8",
            ["EGRESS_MAX_MB"] = "100",
            ["EGRESS_IDLE_TIMEOUT_SECONDS"] = "30",
        });

        Assert.Equal(["10.20.0.0/16", "127.0.0.2:8443"], egress.AllowCidrs.Select(r => r.ToString()));
        Assert.Equal([new ResolvePin("vendor.test", 8443, IPAddress.Parse("127.0.0.2")), new ResolvePin("gw.test", 443, IPAddress.IPv6Loopback)], egress.Resolve);
        Assert.True(egress.JobsMayAddHosts);
        Assert.Equal(8, egress.MaxConnections);
        Assert.Equal(100L * 1024 * 1024, egress.MaxBytes);
        Assert.Equal(TimeSpan.FromSeconds(30), egress.IdleTimeout);
    }

    [Theory]
    [InlineData("EGRESS_ALLOW_CIDRS", "10.0.0.0/33", "'10.0.0.0/33'")]
    [InlineData("EGRESS_ALLOW_CIDRS", "gateway.internal", "'gateway.internal'")]
    [InlineData("EGRESS_RESOLVE", "vendor.test:127.0.0.2", "'vendor.test:127.0.0.2' is not host:port:address")]
    [InlineData("EGRESS_RESOLVE", "vendor.test:443:gateway", "not an IP address")]
    [InlineData("EGRESS_JOBS_MAY_ADD_HOSTS", "sometimes", "'sometimes' is not one of true, false")]
    [InlineData("EGRESS_MAX_CONNECTIONS", "0", "whole number")]
    [InlineData("EGRESS_MAX_MB", "lots", "whole number")]
    [InlineData("EGRESS_IDLE_TIMEOUT_SECONDS", "-1", "whole number")]
    public void Load_BadValue_IsAConfigErrorNamingTheSetting(string name, string value, string because)
    {
        var error = Assert.Throws<AgentWorker.Configuration.ConfigException>(() => Load(new() { [name] = value }));

        Assert.Contains($"/ {name} (from environment {name})", error.Message, StringComparison.Ordinal);
        Assert.Contains(because, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigShow_ListsTheEgressSettingsWithTheirSources()
    {
        await using var show = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["AGENT_WORKER_DATA"] = _dir.Combine("data"),
            ["HOME"] = _dir.Path,
            ["EGRESS_MAX_MB"] = "100",
            ["EGRESS_RESOLVE"] = "vendor.test:443:127.0.0.2",
        }, "config", "show");

        Assert.Equal(0, await show.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var rows = show.Output.Split('\n');
        foreach (var (name, value, from) in new[]
        {
            ("EGRESS_ALLOW_CIDRS", "-", "default"), ("EGRESS_RESOLVE", "vendor.test:443:127.0.0.2", "EGRESS_RESOLVE"),
            ("EGRESS_JOBS_MAY_ADD_HOSTS", "false", "default"), ("EGRESS_MAX_CONNECTIONS", "64", "default"),
            ("EGRESS_MAX_MB", "100", "EGRESS_MAX_MB"), ("EGRESS_IDLE_TIMEOUT_SECONDS", "300", "default"),
        })
        {
            var row = Assert.Single(rows, r => r.Contains($" {name} ", StringComparison.Ordinal));
            Assert.Matches($@"\s{Regex(value)}\s+{Regex(from)}\s*$", row);
        }
    }

    private static string Regex(string text) => System.Text.RegularExpressions.Regex.Escape(text);

    public void Dispose() => _dir.Dispose();
}
