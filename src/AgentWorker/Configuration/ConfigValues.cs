using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace AgentWorker.Configuration;

/// <summary>Where a setting's value came from.</summary>
internal enum ConfigOrigin { Default, File, Environment, Flag }

/// <summary>Raw setting values resolved with precedence flags &gt; environment &gt; config file &gt; defaults.</summary>
internal sealed class ConfigValues
{
    private readonly Dictionary<Setting, (string? Value, ConfigOrigin Origin, string Source)> _values = [];

    public static ConfigValues Resolve(IReadOnlyDictionary<Setting, string?> flags, Func<string, string?> environment)
    {
        var values = new ConfigValues();
        foreach (var setting in Settings.All)
            values._values[setting] = (setting.Default, ConfigOrigin.Default, "default");

        var file = flags.GetValueOrDefault(Settings.ConfigFile) ?? environment(Settings.ConfigFile.Env[0]);
        if (file is not null)
        {
            values._values[Settings.ConfigFile] = (file, ConfigOrigin.Flag, Settings.ConfigFile.Flag);
            foreach (var (setting, value) in ReadFile(file))
                values._values[setting] = (value, ConfigOrigin.File, file);
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

    private static IEnumerable<(Setting, string)> ReadFile(string file)
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
            var setting = Settings.All.FirstOrDefault(s => s.Key == key && s != Settings.ConfigFile)
                ?? throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file}: unknown key '{key}' (see `agent-worker config show`)");
            if (value is not null and not string)
                throw new ConfigException($"invalid setting {Settings.ConfigFile.Flag}: {file}: '{key}' must be a single value");
            yield return (setting, (string?)value ?? "");
        }
    }
}
