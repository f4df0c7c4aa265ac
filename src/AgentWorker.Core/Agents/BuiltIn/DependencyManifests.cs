using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Reads the dependencies declared by package manifests: package.json, requirements*.txt, MSBuild
/// project and props files, go.mod and Cargo.toml. Local path dependencies are left out: they have no
/// version to pin or to disagree about.
/// </summary>
internal static partial class DependencyManifests
{
    private static readonly string[] MsBuildExtensions = [".csproj", ".fsproj", ".vbproj", ".props", ".targets"];
    private static readonly string[] MsBuildItems = ["PackageReference", "PackageVersion", "GlobalPackageReference"];
    private static readonly string[] LocalOrTarballNpmProtocols = ["file:", "link:", "workspace:", "portal:", "http:", "https:"];
    private static readonly string[] GitNpmProtocols = ["git+", "git:", "github:", "gitlab:", "bitbucket:", "gist:"];

    /// <summary>The file's dependencies; a manifest that cannot be parsed is logged and yields none.</summary>
    public static IReadOnlyList<DeclaredDependency> Read(TextFile file, AgentOutput output)
    {
        if (file.Name == "package.json")
        {
            if (PackageJson.Read(file) is { } manifest)
                return [.. manifest.Dependencies.Select(e => FromNpm(e, file.Path)).OfType<DeclaredDependency>()];
            output.Log($"skipped {file.Path}: not a JSON object", "warn");
            return [];
        }
        if (file.Name == "go.mod")
            return ReadGoMod(file);
        if (file.Name == "Cargo.toml")
            return ReadCargo(file);
        if (IsRequirementsFile(file.Path))
            return ReadRequirements(file);
        if (MsBuildExtensions.Contains(file.Extension))
        {
            try
            {
                return ReadMsBuild(file);
            }
            catch (XmlException)
            {
                output.Log($"skipped {file.Path}: not well-formed XML", "warn");
            }
        }
        return [];
    }

    private static bool IsRequirementsFile(string path)
    {
        var name = Path.GetFileName(path);
        return name.EndsWith(".txt", StringComparison.Ordinal)
            && (name.StartsWith("requirements", StringComparison.Ordinal) || path.Contains("requirements/", StringComparison.Ordinal));
    }

    private static DeclaredDependency? FromNpm(PackageJson.Entry entry, string file)
    {
        var spec = entry.Value.Trim();
        var hash = spec.IndexOf('#', StringComparison.Ordinal);
        var isGit = GitNpmProtocols.Any(p => spec.StartsWith(p, StringComparison.Ordinal))
            || GitHubShorthand().IsMatch(spec)
            || (spec.StartsWith("https:", StringComparison.Ordinal) && spec.Contains(".git", StringComparison.Ordinal));
        if (isGit)
            return new(DeclaredDependency.Npm, entry.Name, "", entry.Section, file, entry.Line, GitReference.Guess(hash < 0 ? null : spec[(hash + 1)..]));
        if (LocalOrTarballNpmProtocols.Any(p => spec.StartsWith(p, StringComparison.Ordinal)))
            return null;
        return new(DeclaredDependency.Npm, entry.Name, spec, entry.Section, file, entry.Line);
    }

    private static List<DeclaredDependency> ReadRequirements(TextFile file)
    {
        var dependencies = new List<DeclaredDependency>();
        foreach (var (line, raw) in file.LogicalLines())
        {
            // pip only treats '#' as a comment at the start or after whitespace ("#egg=" belongs to a URL);
            // per-requirement options such as --hash follow the requirement itself.
            var text = RequirementOptions().Replace(PipComment().Replace(raw, ""), "").Trim();
            var editable = EditableOption().Match(text);
            if (editable.Success)
                text = text[editable.Length..].Trim();
            else if (text.Length == 0 || text.StartsWith('-'))
                continue;

            if (text.Contains("://", StringComparison.Ordinal) || text.StartsWith("git+", StringComparison.Ordinal))
            {
                if (EggName().Match(text) is { Success: true } egg && IsGitUrl(text))
                    dependencies.Add(new(DeclaredDependency.PyPI, egg.Groups["name"].Value, "", "requirements", file.Path, line, GitReference.Guess(PipRef(text))));
                continue;
            }
            if (Pep508().Match(text.Split(';')[0]) is not { Success: true } requirement)
                continue;
            var name = requirement.Groups["name"].Value;
            var rest = requirement.Groups["rest"].Value.Trim();
            if (rest.StartsWith('@'))
            {
                var url = rest[1..].Trim();
                if (IsGitUrl(url))
                    dependencies.Add(new(DeclaredDependency.PyPI, name, "", "requirements", file.Path, line, GitReference.Guess(PipRef(url))));
                continue;
            }
            dependencies.Add(new(DeclaredDependency.PyPI, name, rest.Trim('(', ')', ' '), "requirements", file.Path, line));
        }
        return dependencies;
    }

    private static bool IsGitUrl(string url) => url.StartsWith("git+", StringComparison.Ordinal) || url.StartsWith("git://", StringComparison.Ordinal);

    /// <summary>The "@ref" of a pip VCS URL ("git+https://host/org/repo.git@ref#egg=x"); an '@' before the path is user info.</summary>
    private static string? PipRef(string url)
    {
        var fragment = url.IndexOf('#', StringComparison.Ordinal);
        if (fragment >= 0)
            url = url[..fragment];
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        var hostAndPath = scheme < 0 ? url : url[(scheme + 3)..];
        var slash = hostAndPath.IndexOf('/', StringComparison.Ordinal);
        var at = slash < 0 ? -1 : hostAndPath.IndexOf('@', slash);
        return at < 0 ? null : hostAndPath[(at + 1)..];
    }

    private static List<DeclaredDependency> ReadMsBuild(TextFile file)
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null };
        using var reader = XmlReader.Create(new StringReader(file.Text), settings);
        var document = XDocument.Load(reader, LoadOptions.SetLineInfo);
        var dependencies = new List<DeclaredDependency>();
        foreach (var item in document.Descendants().Where(e => MsBuildItems.Contains(e.Name.LocalName)))
        {
            var name = (item.Attribute("Include") ?? item.Attribute("Update"))?.Value.Trim();
            var version = (item.Attribute("Version") ?? item.Attribute("VersionOverride"))?.Value
                ?? item.Elements().FirstOrDefault(e => e.Name.LocalName is "Version" or "VersionOverride")?.Value;
            // "$(SomeVersion)" is resolved by MSBuild from properties this reader does not evaluate.
            if (string.IsNullOrEmpty(name) || string.IsNullOrWhiteSpace(version) || version.Contains("$(", StringComparison.Ordinal))
                continue;
            dependencies.Add(new(DeclaredDependency.NuGet, name, version.Trim(), item.Name.LocalName, file.Path, ((IXmlLineInfo)item).LineNumber));
        }
        return dependencies;
    }

    private static List<DeclaredDependency> ReadGoMod(TextFile file)
    {
        var dependencies = new List<DeclaredDependency>();
        var inRequireBlock = false;
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var text = file.Lines[i].Split("//")[0].Trim();
            if (inRequireBlock && text == ")")
            {
                inRequireBlock = false;
                continue;
            }
            if (text.StartsWith("require", StringComparison.Ordinal) && text.EndsWith('('))
            {
                inRequireBlock = true;
                continue;
            }
            var match = inRequireBlock ? GoModule().Match(text) : GoRequire().Match(text);
            if (match.Success)
                dependencies.Add(new(DeclaredDependency.Go, match.Groups["path"].Value, match.Groups["version"].Value, "require", file.Path, i + 1));
        }
        return dependencies;
    }

    private static List<DeclaredDependency> ReadCargo(TextFile file)
    {
        var dependencies = new List<DeclaredDependency>();
        string? section = null;
        // "[dependencies.serde]" declares one dependency over several lines: its keys are collected and
        // the dependency is reported on the header line.
        (string Name, string Section, int Line, Dictionary<string, string> Keys)? subTable = null;
        void FlushSubTable()
        {
            if (subTable is { } pending)
                AddCargo(dependencies, pending.Name, pending.Keys, pending.Section, file.Path, pending.Line);
            subTable = null;
        }

        for (var i = 0; i < file.Lines.Count; i++)
        {
            var text = file.Lines[i].Split(" #")[0].Trim();
            if (TomlTableHeader().Match(text) is { Success: true } header)
            {
                FlushSubTable();
                var table = CargoDependencyTable().Match(header.Groups["table"].Value);
                section = table.Success ? table.Groups["section"].Value : null;
                if (table.Groups["name"].Success)
                    subTable = (table.Groups["name"].Value.Trim('"'), section!, i + 1, []);
                continue;
            }
            if (section is null || TomlKeyValue().Match(text) is not { Success: true } entry)
                continue;
            var key = entry.Groups["key"].Value.Trim('"');
            var value = entry.Groups["value"].Value.Trim();
            if (subTable is { } current)
                current.Keys[key] = value.Trim('"');
            else if (value.StartsWith('"'))
                AddCargo(dependencies, key, new() { ["version"] = value.Trim('"') }, section, file.Path, i + 1);
            else if (value.StartsWith('{'))
                AddCargo(dependencies, key, TomlInlineTable().Matches(value).ToDictionary(m => m.Groups["key"].Value, m => m.Groups["value"].Value.Trim('"')), section, file.Path, i + 1);
        }
        FlushSubTable();
        return dependencies;
    }

    private static void AddCargo(List<DeclaredDependency> dependencies, string name, Dictionary<string, string> keys, string section, string file, int line)
    {
        if (keys.ContainsKey("path") || keys.ContainsKey("workspace"))
            return;
        if (keys.ContainsKey("git"))
        {
            // Cargo names the kind of ref explicitly, so nothing needs guessing.
            var git = keys.TryGetValue("rev", out var rev) ? new GitReference(rev, GitRefKind.Commit)
                : keys.TryGetValue("tag", out var tag) ? new GitReference(tag, GitRefKind.Tag)
                : keys.TryGetValue("branch", out var branch) ? new GitReference(branch, GitRefKind.Branch)
                : new GitReference(null, GitRefKind.None);
            dependencies.Add(new(DeclaredDependency.Cargo, name, "", section, file, line, git));
        }
        else if (keys.TryGetValue("version", out var version))
        {
            dependencies.Add(new(DeclaredDependency.Cargo, name, version, section, file, line));
        }
    }

    [GeneratedRegex(@"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:#.*)?$", RegexOptions.CultureInvariant)]
    private static partial Regex GitHubShorthand();

    [GeneratedRegex(@"(?:^|\s)#.*$", RegexOptions.CultureInvariant)]
    private static partial Regex PipComment();

    [GeneratedRegex(@"\s--.*$", RegexOptions.CultureInvariant)]
    private static partial Regex RequirementOptions();

    [GeneratedRegex(@"^(?:-e|--editable)(?:\s+|=)", RegexOptions.CultureInvariant)]
    private static partial Regex EditableOption();

    [GeneratedRegex(@"#(?:.*&)?egg=(?<name>[A-Za-z0-9][A-Za-z0-9._-]*)", RegexOptions.CultureInvariant)]
    private static partial Regex EggName();

    [GeneratedRegex(@"^(?<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?<rest>.*)$", RegexOptions.CultureInvariant)]
    private static partial Regex Pep508();

    [GeneratedRegex(@"^require\s+(?<path>\S+)\s+(?<version>v\S+)$", RegexOptions.CultureInvariant)]
    private static partial Regex GoRequire();

    [GeneratedRegex(@"^(?<path>[^\s()]+)\s+(?<version>v\S+)$", RegexOptions.CultureInvariant)]
    private static partial Regex GoModule();

    [GeneratedRegex(@"^\[(?<table>[^\[\]]+)\]$", RegexOptions.CultureInvariant)]
    private static partial Regex TomlTableHeader();

    // [dependencies], [dev-dependencies], [workspace.dependencies], [target.'cfg(unix)'.dependencies],
    // each optionally followed by ".name" for a one-dependency table.
    [GeneratedRegex(@"^\s*(?:.+\.)?(?<section>(?:dev-|build-)?dependencies)(?:\.(?<name>[^.]+))?\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex CargoDependencyTable();

    [GeneratedRegex(@"^(?<key>[A-Za-z0-9_-]+|""[^""]+"")\s*=\s*(?<value>.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex TomlKeyValue();

    [GeneratedRegex(@"(?<key>[A-Za-z0-9_-]+)\s*=\s*(?<value>""[^""]*""|[^,}\s]+)", RegexOptions.CultureInvariant)]
    private static partial Regex TomlInlineTable();
}
