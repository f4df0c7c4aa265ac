using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class BuiltInAgentsTests : IDisposable
{
    private readonly TempRepository repository = new();

    public static TheoryData<string> AgentIds => [.. BuiltInAgents.All.Select(a => a.Id)];

    public void Dispose() => repository.Dispose();

    [Fact]
    public void All_ContainsTheThreeAuditAgentsWithUniqueIds() =>
        Assert.Equal(["ssot_auditor", "secret_scanner", "dependency_auditor"], BuiltInAgents.All.Select(a => a.Id));

    [Theory]
    [InlineData("ssot_auditor", typeof(SsotAuditor))]
    [InlineData("secret_scanner", typeof(SecretScanner))]
    [InlineData("dependency_auditor", typeof(DependencyAuditor))]
    public void Find_KnownId_ReturnsThatAgent(string id, Type type) => Assert.IsType(type, BuiltInAgents.Find(id));

    [Theory]
    [InlineData("codex")]
    [InlineData("SSOT_AUDITOR")]
    [InlineData("")]
    public void Find_UnknownId_ReturnsNull(string id) => Assert.Null(BuiltInAgents.Find(id));

    [Theory]
    [MemberData(nameof(AgentIds))]
    public void Run_AnyRepository_WritesOnlyStructuredProtocolLines(string id)
    {
        repository
            .Write("package.json", """{ "dependencies": { "left-pad": "*" } }""")
            .Write("a.py", "MAX_RETRIES = 3\npassword = \"" + "Xk9#mQ2" + "vL7@pR4!\"\n")
            .Write("b.py", "MAX_RETRIES = 4\n")
            .Write("Dockerfile", "FROM ubuntu\nRUN curl https://example.com/i | sh\n")
            .WriteBytes("logo.png", [0x89, 0x50, 0x4E, 0x47, 0, 0, 0]);

        var transcript = AgentTranscript.Run(BuiltInAgents.Find(id)!, repository);

        Assert.All(transcript.Messages, message => Assert.IsNotType<AgentMessage.Plain>(message));
        Assert.IsType<AgentMessage.Progress>(transcript.Messages[0]);
        Assert.Equal(0, ((AgentMessage.Progress)transcript.Messages[0]).Percent);
        Assert.IsType<AgentMessage.Result>(transcript.Messages[^1]);
        Assert.Contains(transcript.Messages, m => m is AgentMessage.Progress { Percent: 100 });
        Assert.NotEmpty(transcript.Findings);
        Assert.All(transcript.Findings, finding =>
        {
            Assert.Contains(finding.Severity, AgentMessage.Severities);
            Assert.Equal(finding.Severity, AgentMessage.NormalizeSeverity(finding.Severity));
            Assert.NotNull(finding.File);
            Assert.False(Path.IsPathRooted(finding.File));
            Assert.DoesNotContain('\\', finding.File);
            Assert.True(finding.Line is null or >= 1);
        });
        Assert.StartsWith($"{id}: {transcript.Findings.Count} finding", transcript.Summary, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(AgentIds))]
    public void Run_SameRepositoryTwice_WritesIdenticalOutput(string id)
    {
        repository
            .Write("z.py", "TIMEOUT_MS = 100\n")
            .Write("a.py", "TIMEOUT_MS = 200\n")
            .Write("requirements.txt", "flask\nrequests\n")
            .Write("m/.env", "A=1\n");
        var agent = BuiltInAgents.Find(id)!;

        Assert.Equal(AgentTranscript.Run(agent, repository).Raw, AgentTranscript.Run(agent, repository).Raw);
    }

    [Theory]
    [MemberData(nameof(AgentIds))]
    public void Run_CancelledToken_ThrowsOperationCanceled(string id)
    {
        repository.Write("a.txt", "x");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.Throws<OperationCanceledException>(() => AgentTranscript.Run(BuiltInAgents.Find(id)!, repository, cancelled.Token));
    }
}
