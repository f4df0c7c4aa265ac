using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Agents;

/// <summary>
/// The agent output protocol (DESIGN.md): each stdout line that is a JSON object with a "type" of
/// progress, finding, artifact, log or result is structured; any other line is a plain log line.
/// </summary>
public abstract record AgentMessage
{
    public sealed record Plain(string Text) : AgentMessage;
    public sealed record Progress(int? Percent, string Message) : AgentMessage;
    public sealed record FindingReported(Finding Finding) : AgentMessage;
    public sealed record Artifact(string Path) : AgentMessage;
    public sealed record Log(string Level, string Message) : AgentMessage;
    public sealed record Result(string? Summary) : AgentMessage;

    public static readonly IReadOnlyList<string> Severities = ["critical", "high", "medium", "low", "info"];

    /// <summary>Reads one stdout line. Never throws: anything that is not a well-formed message is plain text.</summary>
    public static AgentMessage Parse(string line)
    {
        var trimmed = line.AsSpan().Trim();
        if (trimmed.Length < 2 || trimmed[0] != '{')
            return new Plain(line);
        JsonObject? obj;
        try
        {
            obj = JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException)
        {
            return new Plain(line);
        }
        if (obj is null || !TryString(obj, "type", out var type))
            return new Plain(line);
        return type switch
        {
            "progress" => new Progress(TryInt(obj, "percent") ?? TryInt(obj, "progress"), String(obj, "message") ?? ""),
            "finding" => new FindingReported(new Finding(
                NormalizeSeverity(String(obj, "severity")),
                String(obj, "rule") ?? "unspecified",
                String(obj, "file"),
                TryInt(obj, "line"),
                String(obj, "message") ?? "")),
            "artifact" when String(obj, "path") is { } path => new Artifact(path),
            "log" => new Log(String(obj, "level") ?? "info", String(obj, "message") ?? ""),
            "result" => new Result(String(obj, "summary")),
            _ => new Plain(line),
        };
    }

    /// <summary>Maps free-form severities onto the five the health score knows; unknown ones count as low.</summary>
    public static string NormalizeSeverity(string? severity) => severity?.Trim().ToLowerInvariant() switch
    {
        "critical" or "blocker" or "fatal" => "critical",
        "high" or "error" or "major" => "high",
        "medium" or "moderate" or "warning" or "warn" => "medium",
        "info" or "information" or "note" => "info",
        _ => "low",
    };

    private static bool TryString(JsonObject obj, string name, out string value)
    {
        value = String(obj, name) ?? "";
        return value.Length > 0;
    }

    private static string? String(JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static int? TryInt(JsonObject obj, string name) =>
        obj[name] is JsonValue v && (v.TryGetValue<int>(out var i) || (v.TryGetValue<double>(out var d) && (i = (int)d) == i)) ? i : null;
}

/// <summary>Writes protocol lines; used by the built-in agents.</summary>
public sealed class AgentOutput(TextWriter writer)
{
    public void Finding(Finding finding) => Write(new JsonObject
    {
        ["type"] = "finding",
        ["severity"] = finding.Severity,
        ["rule"] = finding.Rule,
        ["file"] = finding.File,
        ["line"] = finding.Line,
        ["message"] = finding.Message,
    });

    public void Progress(int percent, string message) =>
        Write(new JsonObject { ["type"] = "progress", ["percent"] = percent, ["message"] = message });

    public void Log(string message, string level = "info") =>
        Write(new JsonObject { ["type"] = "log", ["level"] = level, ["message"] = message });

    public void Result(string summary) => Write(new JsonObject { ["type"] = "result", ["summary"] = summary });

    private void Write(JsonObject message)
    {
        writer.WriteLine(message.ToJsonString());
        writer.Flush();
    }
}
