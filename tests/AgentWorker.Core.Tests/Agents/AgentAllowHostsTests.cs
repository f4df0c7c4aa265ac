using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Jobs;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Agents;

/// <summary>Network allowlist in the registry (<c>allowHosts</c>) and how a job's own list meets its agent's.</summary>
public sealed class AgentAllowHostsTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private static readonly AgentDefinition Codex = new()
    {
        Id = "codex",
        Command = ["codex"],
        Network = NetworkMode.Allowlist,
        AllowHosts = [HostPattern.Parse("api.openai.com"), HostPattern.Parse("*.example.com:8443")],
    };

    private static JobSpec Job(NetworkMode? network = null, params string[] allowHosts) => new()
    {
        Id = "j",
        Repo = new RepoRef("/r"),
        Network = network,
        AllowHosts = allowHosts.Length > 0 ? allowHosts : null,
    };

    private static IEnumerable<string>? Hosts(IReadOnlyList<HostPattern>? list) => list?.Select(h => h.ToString());

    private AgentRegistry LoadYaml(string yaml, bool jobsMayAddHosts = false)
    {
        var file = _dir.Combine("agents.yaml");
        File.WriteAllText(file, yaml);
        return AgentRegistry.Load(file, ["agent-worker"], jobsMayAddHosts: jobsMayAddHosts);
    }

    [Fact]
    public void Load_AllowlistEntry_ReadsCanonicalHosts()
    {
        var agent = LoadYaml("""
            agents:
              - id: vendor
                command: [vendor]
                network: allowlist
                allowHosts: [API.Vendor.test, "*.cdn.test:8443", "plain.test:80"]
            """).Find("vendor")!;

        Assert.Equal(NetworkMode.Allowlist, agent.Network);
        Assert.Equal(["api.vendor.test:443", "*.cdn.test:8443", "plain.test:80"], Hosts(agent.AllowHosts));
    }

    [Theory]
    [InlineData("network: allowlist", "agents[0].allowHosts: network allowlist needs a non-empty list")]
    [InlineData("network: allowlist\n    allowHosts: []", "agents[0].allowHosts: network allowlist needs a non-empty list")]
    [InlineData("network: full\n    allowHosts: [api.vendor.test]", "agents[0].allowHosts: only used with network: allowlist")]
    [InlineData("allowHosts: [api.vendor.test]", "agents[0].allowHosts: only used with network: allowlist")]
    [InlineData("network: allowlist\n    allowHosts: [api.vendor.test, \"bad host\"]", "agents[0].allowHosts[1]: 'bad host'")]
    [InlineData("network: allowlist\n    allowHosts: [\"api.vendor.test:99999\"]", "agents[0].allowHosts[0]: 'api.vendor.test:99999': bad port")]
    [InlineData("network: internet", "agents[0].network: must be none, mcp_only, allowlist or full")]
    public void Load_BadAllowHosts_NamesTheFileTheAgentAndTheEntry(string lines, string expected)
    {
        var error = Assert.Throws<AgentRegistryException>(() => LoadYaml($"agents:\n  - id: vendor\n    command: [vendor]\n    {lines}\n"));

        Assert.Contains(_dir.Combine("agents.yaml"), error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "https://openrouter.ai/api/v1")]
    [InlineData("http://Gateway.internal/v1", "http://gateway.internal/v1")]
    [InlineData("http://[fd00::5]:8000/v1", "http://[fd00::5]:8000/v1")]
    public void Load_LlmAgent_ReachesItsBaseUrlThroughTheGateway_AndNoHostDirectly(string? baseUrl, string upstream)
    {
        var variables = new Dictionary<string, string> { [LlmReviewer.ModelVariable] = "m" };
        if (baseUrl is not null)
            variables[LlmReviewer.BaseUrlVariable] = baseUrl;

        var llm = AgentRegistry.Load(null, ["agent-worker"], variables).Find(LlmReviewer.AgentId)!;

        Assert.Equal(NetworkMode.Allowlist, llm.Network);
        Assert.Empty(llm.AllowHosts);
        var vendor = Assert.Single(llm.Gateway);
        Assert.Equal((upstream, LlmReviewer.BaseUrlVariable, LlmReviewer.ApiKeyVariable), (vendor.Upstream.AbsoluteUri, vendor.BaseUrlVariable, vendor.KeyVariable));
        // The endpoint is the gateway's business: the agent gets only the model, and the gateway's URL in LLM_BASE_URL.
        Assert.Equal(["m"], llm.Variables.Values);
    }

    [Fact]
    public void Load_JobsMayAddHosts_ReachesEveryAgent()
    {
        var registry = LoadYaml("agents:\n  - id: vendor\n    command: [vendor]\n", jobsMayAddHosts: true);

        Assert.All(registry.All, agent => Assert.True(agent.JobsMayAddHosts));
    }

    [Fact]
    public void AllowHostsFor_JobWithoutAList_GetsTheAgentsList() =>
        Assert.Equal(["api.openai.com:443", "*.example.com:8443"], Hosts(Codex.AllowHostsFor(Job())));

    [Fact]
    public void AllowHostsFor_NarrowerJobList_IsTheJobsList() =>
        Assert.Equal(["a.example.com:8443"], Hosts(Codex.AllowHostsFor(Job(NetworkMode.Allowlist, "a.example.com:8443"))));

    [Fact]
    public void AllowHostsFor_JobEntriesTheAgentDoesNotCover_AreLeftOut() =>
        Assert.Equal(["api.openai.com:443"], Hosts(Codex.AllowHostsFor(Job(NetworkMode.Allowlist, "api.openai.com:443", "evil.test:443", "api.openai.com:80"))));

    [Fact]
    public void AllowHostsFor_JobAskingForFull_StaysWithinTheAgentsList() =>
        Assert.Equal(["api.openai.com:443", "*.example.com:8443"], Hosts(Codex.AllowHostsFor(Job(NetworkMode.Full))));

    [Fact]
    public void AllowHostsFor_JobsMayAddHosts_TheJobsListStands()
    {
        var agent = Codex with { JobsMayAddHosts = true };

        Assert.Equal(["pypi.org:443"], Hosts(agent.AllowHostsFor(Job(NetworkMode.Allowlist, "pypi.org:443"))));
        Assert.Null(agent.AllowHostsFor(Job(NetworkMode.Full)));
    }

    [Theory]
    [InlineData(NetworkMode.None)]
    [InlineData(NetworkMode.McpOnly)]
    public void AllowHostsFor_NoProxiedNetwork_IsEmpty(NetworkMode network) => Assert.Equal([], Hosts(Codex.AllowHostsFor(Job(network))));

    [Fact]
    public void AllowHostsFor_AgentWithoutAList()
    {
        var agent = new AgentDefinition { Id = "plain", Command = ["plain"], Network = NetworkMode.Full };

        Assert.Null(agent.AllowHostsFor(Job()));
        Assert.Equal(["pypi.org:443"], Hosts(agent.AllowHostsFor(Job(NetworkMode.Allowlist, "pypi.org:443"))));
        Assert.Equal([], Hosts(agent.AllowHostsFor(Job(NetworkMode.Allowlist))));
    }

    [Theory]
    [InlineData(NetworkMode.Full, new string[0], "network", "full would reach any host: agent 'codex' allows api.openai.com:443, *.example.com:8443")]
    [InlineData(NetworkMode.Allowlist, new[] { "api.openai.com:443", "evil.test:443" }, "allowHosts", "'evil.test:443' is not in the agent's list")]
    [InlineData(NetworkMode.Allowlist, new[] { "*.openai.com:443" }, "allowHosts", "'*.openai.com:443' is not in the agent's list")]
    public void JobNetworkProblem_WideningJob_NamesTheField(NetworkMode network, string[] hosts, string field, string problem)
    {
        var (actualField, actualProblem) = Codex.JobNetworkProblem(Job(network, hosts))!.Value;

        Assert.Equal(field, actualField);
        Assert.StartsWith(problem, actualProblem, StringComparison.Ordinal);
        Assert.Contains("EGRESS_JOBS_MAY_ADD_HOSTS", actualProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void JobNetworkProblem_NarrowingOrPermittedJob_IsNull()
    {
        Assert.Null(Codex.JobNetworkProblem(Job(NetworkMode.Allowlist, "b.example.com:8443")));
        Assert.Null(Codex.JobNetworkProblem(Job(NetworkMode.None)));
        Assert.Null((Codex with { JobsMayAddHosts = true }).JobNetworkProblem(Job(NetworkMode.Allowlist, "pypi.org:443")));
    }

    [Fact]
    public void JobNetworkProblem_AllowlistWithoutHostsOnAnAgentWithoutAList_NamesNetwork()
    {
        var agent = new AgentDefinition { Id = "plain", Command = ["plain"] };

        Assert.Equal("network", agent.JobNetworkProblem(Job(NetworkMode.Allowlist))?.Field);
    }

    [Fact]
    public void ShippedCodingAgents_ReachTheirVendorsThroughTheGateway_AndNoHostDirectly()
    {
        var registry = AgentRegistry.Load(FindShippedFile(), ["agent-worker"]);

        Assert.Equal(["openai:OPENAI_BASE_URL"], Vendors(registry.Find("codex")!));
        Assert.Equal(["anthropic:ANTHROPIC_BASE_URL"], Vendors(registry.Find("claude-code")!));
        Assert.Equal(["openai:OPENAI_API_BASE", "anthropic:ANTHROPIC_BASE_URL", "openrouter:OPENROUTER_API_BASE"], Vendors(registry.Find("aider")!));
        foreach (var agent in new[] { "codex", "claude-code", "aider" }.Select(id => registry.Find(id)!))
        {
            Assert.Equal(NetworkMode.Allowlist, agent.Network);
            Assert.Empty(agent.AllowHosts);
            // A real key passed on by name would reach the sandbox.
            Assert.DoesNotContain(agent.Env, name => name.EndsWith("_API_KEY", StringComparison.Ordinal));
        }
    }

    private static string[] Vendors(AgentDefinition agent) => [.. agent.Gateway.Select(v => $"{v.Name}:{v.BaseUrlVariable}")];

    private static string FindShippedFile()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "AgentWorker", "agents", "coding-agents.yaml");
            if (File.Exists(candidate))
                return candidate;
        }
        throw new FileNotFoundException("src/AgentWorker/agents/coding-agents.yaml not found above the test output");
    }

    public void Dispose() => _dir.Dispose();
}
