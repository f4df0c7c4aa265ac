using System.Globalization;
using System.Text.RegularExpressions;

namespace AgentWorker.Configuration;

/// <summary>Durations written the way Go's flag package writes them (<c>1h2m3.5s</c>, <c>500ms</c>), or a plain number of seconds.</summary>
internal static partial class Durations
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
        {
            if (!double.IsFinite(seconds) || seconds < 0 || seconds > TimeSpan.MaxValue.TotalSeconds / 2)
                return false;
            value = TimeSpan.FromSeconds(seconds);
            return true;
        }
        var match = GoDuration().Match(text.Trim());
        if (!match.Success)
            return false;
        double total = 0;
        foreach (Capture part in match.Groups["part"].Captures)
        {
            var unit = UnitPart().Match(part.Value);
            var number = double.Parse(part.Value[..unit.Index], CultureInfo.InvariantCulture);
            total += number * unit.Value switch
            {
                "h" => 3600,
                "m" => 60,
                "s" => 1,
                "ms" => 1e-3,
                "us" or "µs" => 1e-6,
                _ => 1e-9,
            };
        }
        if (total > TimeSpan.MaxValue.TotalSeconds / 2)
            return false;
        value = TimeSpan.FromSeconds(total);
        return true;
    }

    public static string Format(TimeSpan value) =>
        value.TotalSeconds >= 1 ? $"{value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)}s" : $"{value.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture)}ms";

    [GeneratedRegex(@"^(?<part>\d+(\.\d+)?(h|ms|m|s|us|µs|ns))+$")]
    private static partial Regex GoDuration();

    [GeneratedRegex(@"(h|ms|m|s|us|µs|ns)$")]
    private static partial Regex UnitPart();
}
