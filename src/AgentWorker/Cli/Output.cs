using System.Text.Json;
using AgentWorker.Core.Pipeline;

namespace AgentWorker.Cli;

/// <summary>How commands print: JSON for records, aligned columns for lists.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Indented = new(ResultJson.Options) { WriteIndented = true };

    public static void Json<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, Indented));

    public static void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
    }
}
