using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;

namespace AgentWorker.Bench;

/// <summary>
/// Reads the JSON lines of repeated runs (ours and the peers', any order) and writes one line per peer with
/// the median of every numeric field, plus our ratios against Hangfire InMemory.
/// </summary>
internal static class Summary
{
    private const string Ours = "agent-worker-sqlite";
    private const string Reference = "hangfire-inmemory";

    public static bool Run(TextReader input, TextWriter output, [NotNullWhen(false)] out string? error)
    {
        // Peers and fields keep the order they first appeared in, so the summary reads like the raw lines.
        var peers = new List<(string Name, List<JsonElement> Runs)>();
        var lineNumber = 0;
        while (input.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonElement run;
            try
            {
                using var document = JsonDocument.Parse(line);
                run = document.RootElement.Clone();
            }
            catch (JsonException e)
            {
                error = $"summarize: line {lineNumber} is not JSON ({e.Message})";
                return false;
            }
            if (run.ValueKind != JsonValueKind.Object || !run.TryGetProperty("peer", out var peer) || peer.ValueKind != JsonValueKind.String)
            {
                error = $"summarize: line {lineNumber} is not a result object with a \"peer\" string";
                return false;
            }
            var name = peer.GetString()!;
            var index = peers.FindIndex(p => p.Name == name);
            if (index < 0)
                peers.Add((name, [run]));
            else
                peers[index].Runs.Add(run);
        }
        if (peers.Count == 0)
        {
            error = "summarize: no result lines on stdin";
            return false;
        }

        var medians = peers.ToDictionary(p => p.Name, p => Medians(p.Runs), StringComparer.Ordinal);
        foreach (var (name, runs) in peers)
            output.WriteLine(Line(name, runs.Count, medians[name], name == Ours ? medians.GetValueOrDefault(Reference) : null));
        error = null;
        return true;
    }

    private static List<(string Field, double Median)> Medians(List<JsonElement> runs)
    {
        var fields = runs
            .SelectMany(run => run.EnumerateObject())
            .Where(property => property.Value.ValueKind == JsonValueKind.Number)
            .Select(property => property.Name)
            .Distinct(StringComparer.Ordinal);
        return [.. fields.Select(field => (field, Median(
            [.. runs.Select(run => run.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN)
                .Where(value => !double.IsNaN(value))])))];
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    private static string Line(string peer, int runs, List<(string Field, double Median)> medians, List<(string Field, double Median)>? reference)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("peer", peer);
            json.WriteNumber("runs", runs);
            foreach (var (field, median) in medians)
                json.WriteNumber(field, Math.Round(median, field.StartsWith("latency_", StringComparison.Ordinal) ? 2 : 0));
            if (reference is not null)
            {
                // Throughput ratios above 1 mean we are faster; the latency ratio above 1 means we are slower.
                WriteRatio(json, "ratio_drain_vs_hangfire_inmemory", medians, reference, "drain_per_s");
                WriteRatio(json, "ratio_enqueue_vs_hangfire_inmemory", medians, reference, "enqueue_per_s");
                WriteRatio(json, "ratio_latency_p50", medians, reference, "latency_ms_p50");
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteRatio(Utf8JsonWriter json, string name, List<(string Field, double Median)> ours, List<(string Field, double Median)> theirs, string field)
    {
        var mine = ours.Find(m => m.Field == field);
        var other = theirs.Find(m => m.Field == field);
        if (mine.Field is not null && other.Field is not null && other.Median != 0)
            json.WriteNumber(name, Math.Round(mine.Median / other.Median, 4));
    }
}
