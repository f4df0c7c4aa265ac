using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace AgentWorker.Bench;

/// <summary>Arguments of the <c>sqlite</c> command; defaults match the Hangfire peer (20000 jobs, 20 workers).</summary>
internal sealed record BenchArguments(int Jobs, int Workers, string DataDir)
{
    public static bool TryParse(ReadOnlySpan<string> args, [NotNullWhen(true)] out BenchArguments? parsed, [NotNullWhen(false)] out string? error)
    {
        parsed = null;
        int jobs = 20_000, workers = 20;
        var dataDir = Path.GetTempPath();
        for (var i = 0; i < args.Length; i += 2)
        {
            var flag = args[i];
            if (flag is not ("--jobs" or "--workers" or "--data-dir"))
            {
                error = $"unknown argument '{flag}'";
                return false;
            }
            if (i + 1 >= args.Length)
            {
                error = $"{flag} needs a value";
                return false;
            }
            var value = args[i + 1];
            switch (flag)
            {
                case "--jobs" when !TryPositive(value, 10_000_000, out jobs):
                    error = $"--jobs must be a whole number from 1 to 10000000, got '{value}'";
                    return false;
                case "--workers" when !TryPositive(value, 1_000, out workers):
                    error = $"--workers must be a whole number from 1 to 1000, got '{value}'";
                    return false;
                case "--data-dir" when !Directory.Exists(value):
                    error = $"--data-dir '{value}' is not an existing directory";
                    return false;
                case "--data-dir":
                    dataDir = value;
                    break;
            }
        }
        parsed = new BenchArguments(jobs, workers, dataDir);
        error = null;
        return true;
    }

    private static bool TryPositive(string value, int max, out int number) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out number) && number >= 1 && number <= max;
}
