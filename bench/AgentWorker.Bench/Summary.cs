using System.Buffers;
using System.Text;
using System.Text.Json;

namespace AgentWorker.Bench;

/// <summary>One kind of result line (same bench, peer and concurrency) over repeated runs (<c>repeats</c> in the summary line), with the median of every numeric field.</summary>
internal sealed record ResultGroup(string Bench, string Peer, int Concurrency, int Runs, IReadOnlyList<(string Field, double Median)> Medians, IReadOnlyDictionary<string, string> Texts)
{
    public double? this[string field] => Medians.FirstOrDefault(m => m.Field == field) is { Field: not null } found ? found.Median : null;
}

/// <summary>
/// Reads the JSON lines of repeated runs (ours and the peers', any order) and groups them by bench, peer and
/// concurrency (<c>workers</c> or <c>concurrency</c>), taking the median of every numeric field.
/// </summary>
internal static class Summary
{
    public static List<ResultGroup> Read(TextReader input)
    {
        var groups = new List<(string Bench, string Peer, int Concurrency, List<JsonElement> Runs)>();
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
                throw new UsageException($"line {lineNumber} is not JSON ({e.Message})");
            }
            if (run.ValueKind != JsonValueKind.Object || !run.TryGetProperty("peer", out var peer) || peer.ValueKind != JsonValueKind.String)
                throw new UsageException($"line {lineNumber} is not a result object with a \"peer\" string");
            var bench = run.TryGetProperty("bench", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString()! : "queue";
            var concurrency = Number(run, "workers") ?? Number(run, "concurrency") ?? 0;
            var index = groups.FindIndex(g => g.Bench == bench && g.Peer == peer.GetString() && g.Concurrency == concurrency);
            if (index < 0)
                groups.Add((bench, peer.GetString()!, concurrency, [run]));
            else
                groups[index].Runs.Add(run);
        }
        return groups.ConvertAll(g => new ResultGroup(g.Bench, g.Peer, g.Concurrency, g.Runs.Count, Medians(g.Runs), Texts(g.Runs)));
    }

    public static string ToJson(ResultGroup group)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (group.Bench != "queue")
                json.WriteString("bench", group.Bench);
            json.WriteString("peer", group.Peer);
            // "repeats", not "runs": the sandbox, clone and startup lines have a "runs" field of their own.
            json.WriteNumber("repeats", group.Runs);
            foreach (var (field, median) in group.Medians)
                json.WriteNumber(field, Math.Round(median, Math.Abs(median) >= 100 ? 0 : 3));
            foreach (var (field, text) in group.Texts)
                json.WriteString(field, text);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static int? Number(JsonElement run, string field) =>
        run.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : null;

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

    // Text fields (versions, dates) are the same in every run of a group; the last one is kept.
    private static Dictionary<string, string> Texts(List<JsonElement> runs)
    {
        var texts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in runs.SelectMany(run => run.EnumerateObject()))
        {
            if (property.Value.ValueKind == JsonValueKind.String && property.Name is not ("peer" or "bench"))
                texts[property.Name] = property.Value.GetString()!;
        }
        return texts;
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }
}
