using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Pipeline;

namespace AgentWorker.Cli;

/// <summary>How commands print: JSON for records, aligned columns for lists.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Indented = new(ResultJson.Options) { WriteIndented = true };

    public static void Json<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, Indented));

    /// <summary>
    /// The same output for a document built by hand: no serializer metadata to build by reflection, which is most of what
    /// a short command like <c>stats</c> would otherwise spend starting up.
    /// </summary>
    public static void Document(JsonNode value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            value.WriteTo(json);
        Console.WriteLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    public static void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
    }
}
