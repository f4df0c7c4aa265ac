using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace AgentWorker.Configuration;

/// <summary>Where a setting's value came from.</summary>
internal enum ConfigOrigin { Default, File, Environment, Flag }

/// <summary>Raw setting values resolved with precedence flags &gt; environment &gt; config file &gt; defaults.</summary>
internal sealed class ConfigValues
{
    /// <summary>Config file keys that hold a map rather than one setting's value.</summary>
    public static readonly IReadOnlyList<string> SectionNames = ["toolLimits"];

    private readonly Dictionary<Setting, (string? Value, ConfigOrigin Origin, string Source)> _values = [];
    private readonly Dictionary<string, IDictionary<object, object?>> _sections = [];

    public static ConfigValues Resolve(IReadOnlyDictionary<Setting, string?> flags, Func<string, string?> environment)
    {
        var values = new ConfigValues();
        foreach (var setting in Settings.All)
            values._values[setting] = (setting.Default, ConfigOrigin.Default, "default");

        var file = flags.GetValueOrDefault(Settings.ConfigFile)
            ?? Settings.ConfigFile.Env.Select(environment).FirstOrDefault(v => v is { Length: > 0 })
            ?? DefaultFile(environment);
        if (file is not null)
        {
            values._values[Settings.ConfigFile] = (file, ConfigOrigin.Flag, Settings.ConfigFile.Flag);
            foreach (var (key, value) in ReadFile(file))
            {
                if (value is IDictionary<object, object?> section)
                    values._sections[key] = section;
                else
                    values._values[Settings.All.First(s => s.Key == key)] = ((string?)value, ConfigOrigin.File, file);
            }
        }
        foreach (var setting in Settings.All)
        {
            foreach (var name in setting.Env)
            {
                if (environment(name) is { Length: > 0 } value)
                {
                    values._values[setting] = (value, ConfigOrigin.Environment, name);
                    break;
                }
            }
            if (flags.GetValueOrDefault(setting) is { } flag)
                values._values[setting] = (flag, ConfigOrigin.Flag, setting.Flag);
        }
        return values;
    }

    public string? Get(Setting setting) => _values[setting].Value;

    /// <summary>A map section of the config file (see <see cref="SectionNames"/>), or null when absent.</summary>
    public IDictionary<object, object?>? Section(string name) => _sections.GetValueOrDefault(name);

    /// <summary>A duration as Go writes them (<c>30s</c>, <c>1m30s</c>, <c>500ms</c>, <c>2h</c>) or plain seconds.</summary>
    public TimeSpan GetDuration(Setting setting, TimeSpan min, TimeSpan max)
    {
        var text = Get(setting);
        if (Durations.TryParse(text, out var value) && value >= min && value <= max)
            return value;
        throw Invalid(setting, $"'{text}' is not a duration from {Durations.Format(min)} to {Durations.Format(max)} (e.g. 30s, 1m30s, 500ms)");
    }

    public long GetLong(Setting setting, long min, long max)
    {
        var text = Get(setting);
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        throw Invalid(setting, $"'{text}' is not a whole number from {min} to {max}");
    }

    public (string? Value, ConfigOrigin Origin, string Source) Describe(Setting setting) => _values[setting];

    public int GetInt(Setting setting, int min, int max)
    {
        var text = Get(setting);
        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        throw Invalid(setting, $"'{text}' is not a whole number from {min} to {max}");
    }

    public double GetNumber(Setting setting, double min, double max)
    {
        var text = Get(setting);
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            return value;
        throw Invalid(setting, $"'{text}' is not a number from {min} to {max}");
    }

    /// <summary>The setting as an absolute path.</summary>
    public string GetDirectory(Setting setting) => Get(setting) switch
    {
        null or "" => throw Invalid(setting, "must not be empty"),
        var path when path.Contains('\0', StringComparison.Ordinal) => throw Invalid(setting, "must not contain NUL characters"),
        var path => Path.GetFullPath(path),
    };

    /// <summary>true/false, 1/0 or yes/no; unset or empty is false.</summary>
    public bool GetBool(Setting setting) => Get(setting)?.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" or "" or null => false,
        var other => throw Invalid(setting, $"'{other}' is not one of true, false, 1, 0, yes, no"),
    };

    /// <summary>A comma-separated list, each entry read by <paramref name="parse"/>, whose <see cref="FormatException"/> names the entry.</summary>
    public IReadOnlyList<T> GetList<T>(Setting setting, Func<string, T> parse)
    {
        var items = new List<T>();
        foreach (var entry in (Get(setting) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                items.Add(parse(entry));
            }
            catch (FormatException e)
            {
                throw Invalid(setting, e.Message);
            }
        }
        return items;
    }

    public string GetChoice(Setting setting, params string[] choices)
    {
        var text = Get(setting)?.ToLowerInvariant();
        return choices.Contains(text) ? text! : throw Invalid(setting, $"'{Get(setting)}' is not one of {string.Join(", ", choices)}");
    }

    public ConfigException Invalid(Setting setting, string problem)
    {
        var (_, origin, source) = Describe(setting);
        var from = origin switch
        {
            ConfigOrigin.Environment => $" (from environment {source})",
            ConfigOrigin.File => $" (from config file {source})",
            _ => "",
        };
        return new ConfigException($"invalid setting {setting.Flag} / {setting.Env[0]}{from}: {problem}");
    }

    /// <summary>~/.config/agent-worker/config.yaml (or under XDG_CONFIG_HOME) when it exists.</summary>
    private static string? DefaultFile(Func<string, string?> environment)
    {
        var configHome = environment("XDG_CONFIG_HOME") is { Length: > 0 } xdg ? xdg
            : environment("HOME") is { Length: > 0 } home ? Path.Combine(home, ".config")
            : null;
        var path = configHome is null ? null : Path.Combine(configHome, "agent-worker", "config.yaml");
        return path is not null && File.Exists(path) ? path : null;
    }

    private static IEnumerable<(string Key, object? Value)> ReadFile(string file)
    {
        Dictionary<string, object?>? map;
        try
        {
            var yaml = File.ReadAllText(file);
            if (Core.YamlSafety.FindUnsafe(yaml) is { } unsafeYaml)
                throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file} line {unsafeYaml.Line}: {unsafeYaml.Problem}");
            map = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object?>?>(yaml);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: cannot read {file}: {e.Message}");
        }
        catch (YamlException e)
        {
            throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file} line {e.Start.Line}: not a YAML map of settings");
        }
        foreach (var (key, value) in map ?? [])
        {
            if (SectionNames.Contains(key))
            {
                yield return (key, value as IDictionary<object, object?> ?? throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file}: '{key}' must be a map"));
                continue;
            }
            var setting = Settings.All.FirstOrDefault(s => s.Key == key && s != Settings.ConfigFile)
                ?? throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file}: unknown key '{key}' (see `agent-worker config show`)");
            if (value is not null and not string)
                throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file}: '{key}' must be a single value");
            yield return (setting.Key, (string?)value ?? "");
        }
    }
}
