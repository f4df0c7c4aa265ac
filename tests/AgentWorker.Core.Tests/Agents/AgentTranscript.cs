using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Tests.Agents;

/// <summary>What an agent wrote, as raw protocol lines and parsed back the way the worker will read them.</summary>
internal sealed class AgentTranscript
{
    private AgentTranscript(string raw)
    {
        Raw = raw;
        Lines = raw.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Messages = Lines.Select(AgentMessage.Parse).ToList();
    }

    public string Raw { get; }

    /// <summary>
    /// Every parsed message with all its fields, JSON escapes decoded: where a leaked value would show up
    /// even if the writer escaped some of its characters ("+" is written as \u002B).
    /// </summary>
    public string Decoded => string.Join('\n', Messages);
    public IReadOnlyList<string> Lines { get; }
    public IReadOnlyList<AgentMessage> Messages { get; }

    public IReadOnlyList<Finding> Findings =>
        Messages.OfType<AgentMessage.FindingReported>().Select(m => m.Finding).ToList();

    /// <summary>Findings as (rule, file, line, severity) — the part tests pin exactly.</summary>
    public IReadOnlyList<(string Rule, string? File, int? Line, string Severity)> Keys =>
        Findings.Select(f => (f.Rule, f.File, f.Line, f.Severity)).ToList();

    public IReadOnlyList<string> Logs => Messages.OfType<AgentMessage.Log>().Select(l => l.Message).ToList();

    public string? Summary => Messages.OfType<AgentMessage.Result>().SingleOrDefault()?.Summary;

    public static AgentTranscript Run(IBuiltInAgent agent, TempRepository repository, CancellationToken cancellationToken = default)
    {
        using var writer = new StringWriter();
        agent.Run(repository.Root, prompt: null, new AgentOutput(writer), cancellationToken);
        return new AgentTranscript(writer.ToString());
    }

    public static AgentTranscript Capture(Action<AgentOutput> write)
    {
        using var writer = new StringWriter();
        write(new AgentOutput(writer));
        return new AgentTranscript(writer.ToString());
    }
}
