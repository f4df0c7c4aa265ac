using System.Text.Json.Nodes;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Tests.Jobs;

public sealed class JobRequestParserTests
{
    private static JobParseResult Parse(string json, string? defaultAgent = null) =>
        JobRequestParser.Parse(JsonNode.Parse(json), id => id is "ssot_auditor" or "codex", defaultAgent, () => "generated-id");

    [Fact]
    public void Parse_SeedQueueShape_MapsFieldsAndKeepsRequestedAtInMetadata()
    {
        var job = Parse("""{"id":"test-001","agentId":"ssot_auditor","repoUrl":"https://example.invalid/r.git","mode":"dry_run","requestedAt":"2026-01-01T00:00:00Z"}""").Job!;

        Assert.Equal("test-001", job.Id);
        Assert.Equal("ssot_auditor", job.Agent);
        Assert.Equal("https://example.invalid/r.git", job.Repo.Url);
        Assert.Equal(JobMode.DryRun, job.Mode);
        Assert.Equal("2026-01-01T00:00:00Z", job.Metadata!["requestedAt"]!.GetValue<string>());
    }

    [Fact]
    public void Parse_ReliableQueueShape_MapsBranchPromptAndMcp()
    {
        var job = Parse("""{"id":"job-123","repo_url":"git@github.com:user/repo.git","branch":"feature-branch","prompt":"Implement X","mcp_connection_url":"http://mcp.example.invalid"}""", defaultAgent: "codex").Job!;

        Assert.Null(job.Agent);
        Assert.Equal(new RepoRef("git@github.com:user/repo.git", "feature-branch"), job.Repo);
        Assert.Equal("Implement X", job.Prompt);
        Assert.Equal("http://mcp.example.invalid", job.McpUrl);
        Assert.Null(job.Metadata);
    }

    [Fact]
    public void Parse_NativeShape_MapsEveryField()
    {
        var job = Parse("""
            {"id":"n1","agent":"codex","repo":{"url":"/srv/repo","branch":"dev","commit":"abc123"},"prompt":"p",
             "network":"mcp_only","mcpUrl":"https://mcp.example.invalid","timeoutSeconds":60,"maxAttempts":5,"priority":7,
             "runAt":"2030-01-01T00:00:00Z","metadata":{"team":"a"}}
            """).Job!;

        Assert.Equal(new RepoRef("/srv/repo", "dev", "abc123"), job.Repo);
        Assert.Equal(NetworkMode.McpOnly, job.Network);
        Assert.Equal((60, 5, 7), (job.TimeoutSeconds!.Value, job.MaxAttempts, job.Priority));
        Assert.Equal(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero), job.RunAt);
        Assert.Equal("a", job.Metadata!["team"]!.GetValue<string>());
    }

    [Fact]
    public void Parse_Budget_IsKeptOnTheJob() =>
        Assert.Equal(new Core.Gateway.ModelBudget(3, 5000, 0.25m), Parse("""{"agent":"codex","repoUrl":"/r","budget":{"maxRequests":3,"maxTokens":5000,"maxCostUsd":0.25}}""").Job!.Budget);

    [Fact]
    public void Parse_NoId_UsesGeneratedId() =>
        Assert.Equal("generated-id", Parse("""{"agent":"codex","repoUrl":"/srv/r"}""").Job!.Id);

    [Theory]
    [InlineData("""{"id":"x","agentId":"ssot_auditor"}""", "repoUrl", "required")]
    [InlineData("""{"id":"x","prompt":"p"}""", "repo_url", "required")]
    [InlineData("""{"id":"x","agentId":"nope","repoUrl":"/r"}""", "agentId", "unknown agent 'nope'")]
    [InlineData("""{"id":"x","repoUrl":"/r"}""", "agent", "no default agent")]
    [InlineData("""{"id":"bad id!","agent":"codex","repoUrl":"/r"}""", "id", "letters, digits")]
    [InlineData("""{"agent":"codex","repoUrl":"https://user:token@example.invalid/r.git"}""", "repoUrl", "must not embed credentials")]
    [InlineData("""{"agent":"codex","repoUrl":"https://token@example.invalid/r.git"}""", "repoUrl", "must not embed credentials")]
    [InlineData("""{"agent":"codex","repoUrl":"ext::sh -c touch% /tmp/pwned"}""", "repoUrl", "not a repository")]
    [InlineData("""{"agent":"codex","repoUrl":"--upload-pack=touch /tmp/x"}""", "repoUrl", "not a repository")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","branch":"--force"}""", "branch", "not a valid branch")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","mode":"yolo"}""", "mode", "dry_run or apply")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"internet"}""", "network", "none, mcp_only, allowlist or full")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"mcp_only"}""", "network", "needs an MCP URL")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","timeoutSeconds":0}""", "timeoutSeconds", "whole number")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","maxAttempts":"3"}""", "maxAttempts", "whole number")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","mcp_connection_url":"file:///etc/passwd"}""", "mcp_connection_url", "http(s)")]
    [InlineData("""{"agent":"codex","repoUrl":42}""", "repoUrl", "must be a string")]
    [InlineData("""{"agent":"codex","repo":{"branch":"x"}}""", "repo.url", "required")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","metadata":[1]}""", "metadata", "JSON object")]
    [InlineData("""[1,2]""", "body", "JSON object")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":5}""", "budget", "must be an object")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":{"maxTokens":0}}""", "budget.maxTokens", "positive whole number")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":{"maxTokens":1.5}}""", "budget.maxTokens", "positive whole number")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":{"maxRequests":-1}}""", "budget.maxRequests", "whole number from 1")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":{"maxCostUsd":"1"}}""", "budget.maxCostUsd", "positive number of US dollars")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","budget":{"maxDollars":1}}""", "budget.maxDollars", "not a budget field")]
    [InlineData("""{"id":"a","id":"b","agent":"codex","repoUrl":"/r"}""", "body", "more than once")]
    public void Parse_BadField_IsNamed(string json, string field, string message)
    {
        var result = Parse(json);

        Assert.Null(result.Job);
        Assert.True(result.Errors.ContainsKey(field), $"expected an error for '{field}', got: {string.Join(", ", result.Errors.Keys)}");
        Assert.Contains(message, result.Errors[field][0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"agent":"codex","repo":{"url":"https://ghp_abc123@github.com/o/r.git"}}""", "repo.url")]
    [InlineData("""{"agentId":"codex","repoUrl":"https://x-access-token@github.com/o/r.git"}""", "repoUrl")]
    [InlineData("""{"prompt":"p","repo_url":"http://user:pw@git.example/r.git"}""", "repo_url")]
    [InlineData("""{"agent":"codex","repoUrl":"ssh://git:pw@git.example/r.git"}""", "repoUrl")]
    [InlineData("""{"agent":"codex","repoUrl":"git://tok@git.example/r.git"}""", "repoUrl")]
    [InlineData("""{"agent":"codex","repoUrl":"HTTPS://%67hp_x@github.com/o/r.git"}""", "repoUrl")]
    public void Parse_CredentialsInRepoUrl_AreRefusedNamingFieldAndSetting(string json, string field)
    {
        var result = Parse(json, defaultAgent: "codex");

        Assert.Null(result.Job);
        Assert.Contains("GIT_TOKEN", result.Errors[field][0], StringComparison.Ordinal);
        Assert.Contains("SSH key", result.Errors[field][0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ssh://git@git.example/o/r.git")]
    [InlineData("git@github.com:o/r.git")]
    [InlineData("https://github.com/o/r.git")]
    public void Parse_RepoUrlWithoutCredentials_IsAccepted(string url) =>
        Assert.Equal(url, Parse($$"""{"agent":"codex","repoUrl":"{{url}}"}""").Job!.Repo.Url);

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("...")]
    [InlineData("-rf")]
    [InlineData("_x")]
    [InlineData(":x")]
    public void Parse_IdNotStartingWithLetterOrDigit_IsRefused(string id)
    {
        var result = Parse($$"""{"id":"{{id}}","agent":"codex","repoUrl":"/r"}""");

        Assert.Null(result.Job);
        Assert.Equal(JobRequestParser.IdRule, result.Errors["id"][0]);
    }

    [Theory]
    [InlineData("test-001")]
    [InlineData("job-123")]
    [InlineData("0f8fad5b-d9cb-469f-a165-70867728950e")]
    [InlineData("01JH8Z3K4R5T6Y7U8I9O0PQRST")]
    [InlineData("task-42:retry_1.a")]
    public void Parse_SeedAndGeneratedIdShapes_AreAccepted(string id) =>
        Assert.Equal(id, Parse($$"""{"id":"{{id}}","agent":"codex","repoUrl":"/r"}""").Job!.Id);

    [Theory]
    [InlineData("""{"agent":"codex","repoUrl":"/r","mode":"apply"}""", "branch", "required in apply mode")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","createBranch":true}""", "createBranch", "only meaningful in apply mode")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","commit_message":"m"}""", "commit_message", "only meaningful in apply mode")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","branch":"b","mode":"apply","createBranch":"yes"}""", "createBranch", "true or false")]
    public void Parse_BadApplyField_IsNamed(string json, string field, string message) => Parse_BadField_IsNamed(json, field, message);

    [Fact]
    public void Parse_ApplyMode_KeepsBranchCreationAndMessage()
    {
        var job = Parse("""{"agent":"codex","repo":{"url":"/r","branch":"agent/fix"},"mode":"apply","createBranch":true,"commitMessage":"Fix it"}""").Job!;

        Assert.Equal((JobMode.Apply, "agent/fix", true, "Fix it"), (job.Mode, job.Repo.Branch, job.CreateBranch, job.CommitMessage));
        Assert.Null(job.Metadata);
    }

    [Theory]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":"api.openai.com"}""", "allowHosts", "must be a list")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":[1]}""", "allowHosts", "must be a list")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":["bad host"]}""", "allowHosts", "'bad host'")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":["a.test:0"]}""", "allowHosts", "'a.test:0': bad port")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"none","allowHosts":["a.test"]}""", "allowHosts", "only used with network allowlist, not none")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"mcp_only","mcpUrl":"http://m/","allowHosts":["a.test"]}""", "allowHosts", "not mcp_only")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"full","allowHosts":["a.test"]}""", "allowHosts", "not full")]
    public void Parse_BadAllowHosts_IsNamed(string json, string field, string message) => Parse_BadField_IsNamed(json, field, message);

    [Fact]
    public void Parse_AllowHosts_AreCanonicalAndAskForAnAllowList()
    {
        var job = Parse("""{"agent":"codex","repoUrl":"/r","allowHosts":["API.OpenAI.com.","*.example.com:8443"]}""").Job!;

        Assert.Equal(NetworkMode.Allowlist, job.Network);
        Assert.Equal(["api.openai.com:443", "*.example.com:8443"], job.AllowHosts);
        Assert.False(job.Metadata?.ContainsKey("allowHosts") ?? false);
    }

    [Fact]
    public void Parse_AllowlistNetwork_IsRead() =>
        Assert.Equal(NetworkMode.Allowlist, Parse("""{"agent":"codex","repoUrl":"/r","network":"allowlist"}""").Job!.Network);

    private static readonly AgentDefinition AllowlistCodex = new()
    {
        Id = "codex",
        Command = ["codex"],
        Network = NetworkMode.Allowlist,
        AllowHosts = [HostPattern.Parse("api.openai.com")],
    };

    private static JobParseResult ParseFor(AgentDefinition agent, string json, string? defaultAgent = null) =>
        JobRequestParser.Parse(JsonNode.Parse(json), id => id == agent.Id, defaultAgent, () => "generated-id", id => id == agent.Id ? agent : null);

    [Theory]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":["evil.test"]}""", "allowHosts", "'evil.test:443' is not in the agent's list")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","allowHosts":["api.openai.com:80"]}""", "allowHosts", "'api.openai.com:80' is not in the agent's list")]
    [InlineData("""{"agent":"codex","repoUrl":"/r","network":"full"}""", "network", "full would reach any host")]
    [InlineData("""{"repoUrl":"/r","network":"full"}""", "network", "full would reach any host")]
    public void Parse_JobWideningItsAgentsList_IsRefusedNamingTheField(string json, string field, string message)
    {
        var result = ParseFor(AllowlistCodex, json, defaultAgent: "codex");

        Assert.Null(result.Job);
        Assert.Contains(message, Assert.Single(result.Errors[field]), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_JobNarrowingItsAgentsList_IsAccepted() =>
        Assert.Equal(["api.openai.com:443"], ParseFor(AllowlistCodex, """{"agent":"codex","repoUrl":"/r","allowHosts":["api.openai.com"]}""").Job!.AllowHosts);

    [Fact]
    public void Parse_JobsMayAddHosts_AcceptsAWiderList() =>
        Assert.NotNull(ParseFor(AllowlistCodex with { JobsMayAddHosts = true }, """{"agent":"codex","repoUrl":"/r","allowHosts":["pypi.org"]}""").Job);
}
