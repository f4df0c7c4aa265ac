using AgentWorker.Core.Agents;
using AgentWorker.Core.Execution;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Agents;

public sealed class AgentDefinitionTests
{
    [Fact]
    public void Expand_PromptFile_NamesTheFileAndNotThePrompt()
    {
        var agent = new AgentDefinition { Id = "aider", Command = ["aider", "--message-file", "{prompt_file}", "--cwd", "{workspace}"] };

        Assert.True(agent.UsesPromptFile);
        Assert.Equal(["aider", "--message-file", "/home/agent/p", "--cwd", "/workspace"], agent.Expand("/workspace", new string('x', 300_000), "/home/agent/p"));
    }

    [Fact]
    public void Expand_PromptArgumentOverTheKernelLimit_FailsNamingTheAlternatives()
    {
        var agent = new AgentDefinition { Id = "a", Command = ["tool", "{prompt}"] };

        var error = Assert.Throws<ProcessStartException>(() => agent.Expand("/workspace", new string('x', 200 * 1024), "/home/agent/p"));

        Assert.Contains("{prompt_file}", error.Message, StringComparison.Ordinal);
        Assert.Contains("stdin: prompt", error.Message, StringComparison.Ordinal);
        Assert.False(agent.UsesPromptFile);
    }

    [Fact]
    public void Expand_PromptArgumentAtTheLimit_IsKept() =>
        Assert.Equal(AgentDefinition.MaxArgumentBytes, new AgentDefinition { Id = "a", Command = ["tool", "{prompt}"] }.Expand("/w", new string('x', AgentDefinition.MaxArgumentBytes), "/p")[1].Length);

    [Fact]
    public void Load_StdinAndVariables_AreRead()
    {
        using var dir = new TempDirectory();
        var file = dir.Combine("agents.yaml");
        File.WriteAllText(file, """
            agents:
              - id: codex
                command: ["codex", "exec", "-"]
                stdin: prompt
                variables: {PATH: /opt/codex/bin:/usr/bin:/bin}
            """);

        var agent = AgentRegistry.Load(file, ["agent-worker"]).Find("codex")!;

        Assert.True(agent.PromptOnStdin);
        Assert.Equal("/opt/codex/bin:/usr/bin:/bin", agent.Variables["PATH"]);
    }

    [Fact]
    public void Load_UnknownStdin_NamesTheKey()
    {
        using var dir = new TempDirectory();
        var file = dir.Combine("agents.yaml");
        File.WriteAllText(file, "agents:\n  - id: a\n    command: [a]\n    stdin: everything\n");

        var error = Assert.Throws<AgentRegistryException>(() => AgentRegistry.Load(file, ["agent-worker"]));

        Assert.Contains("agents[0].stdin: must be prompt", error.Message, StringComparison.Ordinal);
    }
}
