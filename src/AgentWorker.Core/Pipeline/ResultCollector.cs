using System.Text.Json;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Pipeline;

/// <summary>Turns an attempt's output lines into job events and, at the end, its <see cref="JobResult"/>.</summary>
internal sealed class ResultCollector(int maxFindings)
{
    private readonly List<Finding> _findings = [];
    private readonly List<string> _artifacts = [];
    private bool _truncated;
    private string? _summary;

    /// <summary>The agent's last stderr line, quoted in the error of a failed attempt.</summary>
    public string? LastError { get; private set; }

    /// <summary>The event to record for <paramref name="line"/>; structured messages are only read from stdout.</summary>
    public NewJobEvent Accept(OutputLine line)
    {
        if (line.Stream != "stdout")
        {
            if (line.Text.Trim().Length > 0)
                LastError = line.Text.Trim();
            return new NewJobEvent(JobEventKind.Log, line.Text, line.Stream);
        }
        lock (_findings)
        {
            switch (AgentMessage.Parse(line.Text))
            {
                case AgentMessage.FindingReported f:
                    if (_findings.Count < maxFindings)
                        _findings.Add(f.Finding);
                    else
                        _truncated = true;
                    return new NewJobEvent(JobEventKind.Finding, JsonSerializer.Serialize(f.Finding, ResultJson.Options));
                case AgentMessage.Progress p:
                    return new NewJobEvent(JobEventKind.Progress, p.Percent is { } percent ? $"{percent}% {p.Message}" : p.Message);
                case AgentMessage.Artifact a:
                    _artifacts.Add(a.Path);
                    return new NewJobEvent(JobEventKind.Artifact, a.Path);
                case AgentMessage.Log l:
                    return new NewJobEvent(JobEventKind.Log, $"[{l.Level}] {l.Message}", line.Stream);
                case AgentMessage.Result r:
                    _summary = r.Summary;
                    return new NewJobEvent(JobEventKind.Log, $"result: {r.Summary}", line.Stream);
                default:
                    return new NewJobEvent(JobEventKind.Log, line.Text, line.Stream);
            }
        }
    }

    /// <summary>Paths the agent reported as artifacts, in order.</summary>
    public IReadOnlyList<string> ReportedArtifacts
    {
        get
        {
            lock (_findings)
                return [.. _artifacts];
        }
    }

    public JobResult Build(int? exitCode, TimeSpan duration)
    {
        lock (_findings)
        {
            return new JobResult
            {
                Findings = [.. _findings],
                HealthScore = HealthScore.Compute(_findings),
                ExitCode = exitCode,
                Summary = _summary,
                FindingsTruncated = _truncated,
                DurationSeconds = Math.Round(duration.TotalSeconds, 3),
            };
        }
    }
}

/// <summary>The one set of JSON options for results and events written by the pipeline.</summary>
public static class ResultJson
{
    /// <summary>
    /// Non-ASCII text is written as it is (a finding's <c>AKIA…</c>, not <c>AKIA\u2026</c>): a finding event's message is
    /// this JSON and is read by people. Control characters are still escaped. Nothing embeds it in HTML unencoded.
    /// </summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
