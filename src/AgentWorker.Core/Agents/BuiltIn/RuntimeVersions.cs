using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// A runtime version a file asks for: pinned (".nvmrc" 20.11.1, "FROM python:3.12-slim") or a range
/// (package.json engines.node, pyproject requires-python, go.mod's go directive).
/// </summary>
internal sealed record RuntimeVersion(string Runtime, string Value, bool IsRange, string File, int Line, string? Setting = null)
{
    public override string ToString() => $"{(Setting is null ? "" : Setting + " ")}{Value} ({File}:{Line})";
}

/// <summary>Finds runtime version declarations and decides whether those of one runtime contradict each other.</summary>
internal static partial class RuntimeVersions
{
    // Components that matter when comparing: Node releases by major, Python and Go by minor.
    private static readonly Dictionary<string, int> SignificantComponents = new(StringComparer.Ordinal)
    {
        ["node"] = 1,
        ["python"] = 2,
        ["go"] = 2,
    };

    // Official image names and asdf plugin names of each runtime.
    private static readonly Dictionary<string, string> RuntimeByImage = new(StringComparer.Ordinal)
    {
        ["node"] = "node",
        ["python"] = "python",
        ["golang"] = "go",
    };

    private static readonly Dictionary<string, string> RuntimeByToolName = new(StringComparer.Ordinal)
    {
        ["nodejs"] = "node",
        ["node"] = "node",
        ["python"] = "python",
        ["golang"] = "go",
        ["go"] = "go",
    };

    public static IEnumerable<RuntimeVersion> Read(TextFile file)
    {
        switch (file.Name)
        {
            case ".nvmrc" or ".node-version":
                return FirstLine(file, "node");
            case ".python-version":
                return FirstLine(file, "python");
            case ".go-version":
                return FirstLine(file, "go");
            case "runtime.txt":
                return Matching(file, RuntimeTxt(), "python", isRange: false, setting: null);
            case ".tool-versions":
                return ToolVersions(file);
            case "pyproject.toml":
                return Matching(file, RequiresPython(), "python", isRange: true, "requires-python");
            case "go.mod":
                // The go directive is a minimum: later toolchains build the module.
                return Matching(file, GoDirective(), "go", isRange: true, "go").Select(v => v with { Value = ">=" + v.Value });
            case "package.json":
                return PackageJson.Read(file)?.NodeEngine is { } engine
                    ? [new RuntimeVersion("node", engine.Value, IsRange: true, file.Path, engine.Line, "engines.node")]
                    : [];
        }
        return Dockerfiles.IsDockerfile(file.Name) ? BaseImageVersions(file) : [];
    }

    /// <summary>
    /// A description of the contradiction among one runtime's declarations — pinned versions that differ,
    /// or a pinned version a declared range excludes — or null when they agree.
    /// </summary>
    public static string? Conflict(IReadOnlyList<RuntimeVersion> declarations)
    {
        var significant = SignificantComponents[declarations[0].Runtime];
        var pinned = declarations
            .Where(d => !d.IsRange)
            .Select(d => (Declaration: d, Version: VersionRange.ParseVersion(d.Value)?.Take(significant).ToArray()))
            .Where(p => p.Version is { Length: > 0 })
            .ToList();
        var differentPins = pinned.Select(p => string.Join('.', p.Version!)).Distinct(StringComparer.Ordinal).Count() > 1;
        var excluded = declarations.Where(d => d.IsRange)
            .Any(range => pinned.Any(p => !VersionRange.Admits(range.Value, p.Version!)));
        if (!differentPins && !excluded)
            return null;
        return $"{declarations[0].Runtime} version declarations disagree: {string.Join(", ", declarations)}; keep one source of truth and derive the others from it";
    }

    private static IEnumerable<RuntimeVersion> FirstLine(TextFile file, string runtime)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var text = file.Lines[i].Trim();
            if (text.Length > 0 && !text.StartsWith('#'))
                return VersionRange.ParseVersion(text) is null ? [] : [new RuntimeVersion(runtime, text, IsRange: false, file.Path, i + 1)];
        }
        return [];
    }

    private static IEnumerable<RuntimeVersion> Matching(TextFile file, Regex pattern, string runtime, bool isRange, string? setting)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            if (pattern.Match(file.Lines[i]) is { Success: true } match)
                yield return new RuntimeVersion(runtime, match.Groups["version"].Value, isRange, file.Path, i + 1, setting);
        }
    }

    private static IEnumerable<RuntimeVersion> ToolVersions(TextFile file)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var parts = file.Lines[i].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && RuntimeByToolName.TryGetValue(parts[0], out var runtime) && VersionRange.ParseVersion(parts[1]) is not null)
                yield return new RuntimeVersion(runtime, parts[1], IsRange: false, file.Path, i + 1, parts[0]);
        }
    }

    private static IEnumerable<RuntimeVersion> BaseImageVersions(TextFile file)
    {
        foreach (var image in Dockerfiles.BaseImages(file))
        {
            var name = image.Name[(image.Name.LastIndexOf('/') + 1)..];
            if (image.Tag is { } tag && RuntimeByImage.TryGetValue(name, out var runtime) && VersionRange.ParseVersion(tag) is not null)
                yield return new RuntimeVersion(runtime, tag, IsRange: false, file.Path, image.Line, $"FROM {name}");
        }
    }

    [GeneratedRegex(@"^\s*python-(?<version>\d+(?:\.\d+)*)\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex RuntimeTxt();

    [GeneratedRegex(@"^\s*requires-python\s*=\s*[""'](?<version>[^""']+)[""']", RegexOptions.CultureInvariant)]
    private static partial Regex RequiresPython();

    [GeneratedRegex(@"^go\s+(?<version>\d+(?:\.\d+)*)\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex GoDirective();
}
