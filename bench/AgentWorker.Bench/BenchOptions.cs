using System.Globalization;

namespace AgentWorker.Bench;

/// <summary>A command's <c>--flag value</c> pairs; anything wrong is a <see cref="UsageException"/> naming the flag.</summary>
internal sealed class BenchOptions
{
    private readonly Dictionary<string, string> values = new(StringComparer.Ordinal);
    private readonly List<KeyValuePair<string, string>> all = [];

    private BenchOptions()
    {
    }

    public static BenchOptions Parse(ReadOnlySpan<string> args, params string[] allowed)
    {
        var options = new BenchOptions();
        for (var i = 0; i < args.Length; i += 2)
        {
            var flag = args[i];
            if (Array.IndexOf(allowed, flag) < 0)
                throw new UsageException($"unknown argument '{flag}' (expected {string.Join(", ", allowed)})");
            if (i + 1 >= args.Length)
                throw new UsageException($"{flag} needs a value");
            options.values[flag] = args[i + 1];
            options.all.Add(new(flag, args[i + 1]));
        }
        return options;
    }

    public int Number(string flag, int fallback, int max)
    {
        if (!values.TryGetValue(flag, out var value))
            return fallback;
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number >= 1 && number <= max
            ? number
            : throw new UsageException($"{flag} must be a whole number from 1 to {max}, got '{value}'");
    }

    public string Choice(string flag, params string[] choices)
    {
        var value = values.GetValueOrDefault(flag) ?? throw new UsageException($"{flag} is required ({string.Join(", ", choices)})");
        return Array.IndexOf(choices, value) >= 0 ? value : throw new UsageException($"{flag} must be one of {string.Join(", ", choices)}, got '{value}'");
    }

    public string? Text(string flag) => values.GetValueOrDefault(flag);

    /// <summary>Every value of a flag that may be repeated, in order.</summary>
    public IEnumerable<string> All(string flag) => all.Where(pair => pair.Key == flag).Select(pair => pair.Value);

    public string ExistingDirectory(string flag, string fallback)
    {
        var value = values.GetValueOrDefault(flag) ?? fallback;
        return Directory.Exists(value) ? value : throw new UsageException($"{flag} '{value}' is not an existing directory");
    }

    /// <summary>
    /// Where the backend's store goes: a directory for SQLite (<c>--data-dir</c>, default the temp directory), a server URL
    /// for Redis and PostgreSQL (<c>--url</c>, default <c>REDIS_URL</c> / <c>POSTGRES_URL</c> as scripts/services export them).
    /// </summary>
    public string Location(string backend)
    {
        if (backend == "sqlite")
            return ExistingDirectory("--data-dir", Path.GetTempPath());
        var variable = backend == "redis" ? "REDIS_URL" : "POSTGRES_URL";
        return Text("--url") ?? (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } url
            ? url
            : throw new UsageException($"--url is required for {backend} (or set {variable})"));
    }
}

/// <summary>Bad command-line input: printed as one line, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
