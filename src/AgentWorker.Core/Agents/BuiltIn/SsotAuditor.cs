using System.Collections.Frozen;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Single-source-of-truth drift: the same thing stated in more than one place, where the copies can
/// (or already do) disagree — copied files and blocks, a dependency pinned to different versions,
/// runtime versions that contradict each other, and constants defined repeatedly.
/// </summary>
internal sealed partial class SsotAuditor : IBuiltInAgent
{
    private const int MinimumDuplicateFileLines = 5;
    private const int MinimumConstantNameLength = 4;

    private const string ConstantName = @"(?<name>[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)";
    private const string NumberLiteral = @"-?(?:0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]+)?(?:[eE][+-]?[0-9]+)?)[uUlLfFdDmMn]{0,3}";
    private const string StringLiteral = @"""(?:[^""\\\r\n]|\\.)*""|'(?:[^'\\\r\n]|\\.)*'";
    private const string LineEnd = @"\s*;?\s*(?:(?://|#|/\*).*)?$";

    private static readonly FrozenSet<string> CodeExtensions = FrozenSet.Create(StringComparer.Ordinal,
        ".cs", ".fs", ".vb", ".java", ".kt", ".kts", ".scala", ".groovy", ".go", ".rs", ".py", ".rb", ".php",
        ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".vue", ".svelte", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh",
        ".m", ".mm", ".swift", ".dart", ".lua", ".pl", ".r", ".ex", ".exs", ".erl", ".hs", ".clj", ".sh", ".bash", ".zsh", ".ps1", ".sql");

    // Prose and configuration are copied between files as much as code is; data files (JSON, XML, CSV,
    // lock files) repeat structure by nature and are left out.
    private static readonly FrozenSet<string> DocumentExtensions = FrozenSet.Create(StringComparer.Ordinal,
        ".md", ".rst", ".adoc", ".yml", ".yaml", ".toml", ".html", ".css", ".scss", ".less", ".tf", ".proto", ".graphql", ".gradle");

    private static readonly string[] GeneratedMarkers = [".min.", ".generated.", ".g.cs", ".designer.cs", "_pb2.py", ".pb.go"];

    public string Id => "ssot_auditor";

    public string Description => "Finds single-source-of-truth drift: duplicated files and blocks, conflicting dependency and runtime versions, repeated constants.";

    public void Run(string workspace, string? prompt, AgentOutput output, CancellationToken cancellationToken)
    {
        output.Progress(0, $"{Id}: reading the repository");
        var report = new AuditReport(Id);
        var files = RepositoryFiles.List(workspace, output, cancellationToken);
        var firstPathByContent = new Dictionary<string, string>(StringComparer.Ordinal);
        var blocks = new DuplicateBlocks();
        var blocksIndexed = true;
        var dependencies = new List<DeclaredDependency>();
        var runtimes = new List<RuntimeVersion>();
        var constants = new List<Constant>();
        foreach (var file in files.ReadTextFiles(cancellationToken))
        {
            if (file.Lines.Count(l => !string.IsNullOrWhiteSpace(l)) >= MinimumDuplicateFileLines)
            {
                var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(file.Text)));
                if (firstPathByContent.TryGetValue(hash, out var original))
                {
                    report.Add("medium", "duplicate-file", file.Path, null,
                        $"identical to {original}; keep one copy and reference or generate the other");
                    // Everything else in a copy would only be reported a second time.
                    continue;
                }
                firstPathByContent[hash] = file.Path;
            }
            var generated = IsGenerated(file.Name);
            var isCode = !generated && CodeExtensions.Contains(file.Extension);
            if (blocksIndexed && !generated && (isCode || DocumentExtensions.Contains(file.Extension) || Dockerfiles.IsDockerfile(file.Name)))
            {
                blocksIndexed = blocks.Add(file);
                if (!blocksIndexed)
                    output.Log($"duplicate-block index full ({DuplicateBlocks.DefaultMaxIndexedLines} lines); later files are not compared", "warn");
            }
            dependencies.AddRange(DependencyManifests.Read(file, output));
            runtimes.AddRange(RuntimeVersions.Read(file));
            if (isCode)
                constants.AddRange(ReadConstants(file));
        }
        output.Progress(80, $"{Id}: comparing");
        foreach (var region in blocks.Regions())
            ReportDuplicateBlock(region, report);
        ReportVersionConflicts(dependencies, report);
        foreach (var runtime in runtimes.GroupBy(r => r.Runtime))
        {
            var declarations = runtime.OrderBy(r => r.File, StringComparer.Ordinal).ThenBy(r => r.Line).ToList();
            if (RuntimeVersions.Conflict(declarations) is { } conflict)
                report.Add("high", "conflicting-version", declarations[0].File, declarations[0].Line, conflict);
        }
        ReportConstants(constants, report);
        report.Publish(output, files.FilesRead);
    }

    private static bool IsGenerated(string name) =>
        GeneratedMarkers.Any(marker => name.Contains(marker, StringComparison.OrdinalIgnoreCase));

    private static void ReportDuplicateBlock(DuplicateBlocks.Region region, AuditReport report)
    {
        var original = region.OriginalFile == region.File ? "earlier in this file" : $"in {region.OriginalFile}";
        report.Add("low", "duplicate-block", region.File, region.FirstLine,
            $"lines {region.FirstLine}–{region.LastLine} repeat lines {region.OriginalFirstLine}–{region.OriginalLastLine} {original} "
            + $"({region.Lines} non-blank lines); extract the shared part into one place");
    }

    private static void ReportVersionConflicts(List<DeclaredDependency> dependencies, AuditReport report)
    {
        var pinned = dependencies.Where(d => d.Git is null && d.Spec.Length > 0 && (d.Ecosystem != DeclaredDependency.PyPI || d.IsExactPythonPin));
        // Peer dependency ranges state what a package works with, not what it installs: they are only
        // comparable with each other.
        var groups = pinned.GroupBy(d => (d.Ecosystem, IsPeer: d.Section == "peerDependencies", d.Key));
        foreach (var group in groups)
        {
            var declarations = group.OrderBy(d => d.File, StringComparer.Ordinal).ThenBy(d => d.Line).ToList();
            if (declarations.Select(d => d.File).Distinct().Count() < 2 || declarations.Select(d => d.Spec).Distinct().Count() < 2)
                continue;
            var places = declarations.Select(d => $"{d.Spec} ({d.File}:{d.Line})");
            report.Add("high", "conflicting-version", declarations[0].File, declarations[0].Line,
                $"{Describe(declarations[0])} is pinned to different versions: {AuditReport.Enumerate(places)}; declare the version once (central package management, workspace catalog or constraints file)");
        }
    }

    private static string Describe(DeclaredDependency dependency) => dependency.Ecosystem switch
    {
        DeclaredDependency.Npm => $"npm package {dependency.Name}",
        DeclaredDependency.PyPI => $"PyPI package {dependency.Name}",
        DeclaredDependency.NuGet => $"NuGet package {dependency.Name}",
        DeclaredDependency.Go => $"Go module {dependency.Name}",
        _ => $"crate {dependency.Name}",
    };

    private static IEnumerable<Constant> ReadConstants(TextFile file)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var match = ConstantDeclaration().Match(file.Lines[i]);
            // Without a declaring keyword only top-level assignments are constants: indented ones are class
            // attributes, enum members or locals, scoped to their class or function.
            if (match.Success && !match.Groups["modifiers"].Success && match.Groups["indent"].Length > 0)
                continue;
            if (!match.Success)
                match = DefineDirective().Match(file.Lines[i]);
            if (match.Success && match.Groups["name"].Value.Length >= MinimumConstantNameLength)
                yield return new Constant(match.Groups["name"].Value, match.Groups["value"].Value, file.Path, i + 1);
        }
    }

    private static void ReportConstants(List<Constant> constants, AuditReport report)
    {
        foreach (var group in constants.GroupBy(c => c.Name, StringComparer.Ordinal))
        {
            var places = group.OrderBy(c => c.File, StringComparer.Ordinal).ThenBy(c => c.Line).ToList();
            if (places.Select(c => c.File).Distinct().Count() < 2)
                continue;
            var first = places[0];
            var byValue = places.GroupBy(c => c.NormalizedValue).ToList();
            if (byValue.Count == 1)
            {
                report.Add("low", "duplicated-constant", first.File, first.Line,
                    $"{first.Name} = {first.Display} is defined in {places.Count} places: {AuditReport.Enumerate(places.Select(c => c.Place))}; define it once and import it");
                continue;
            }
            var values = byValue.Select(v => $"{v.First().Display} at {AuditReport.Enumerate(v.Select(c => c.Place))}");
            report.Add("medium", "conflicting-constant", first.File, first.Line,
                $"{first.Name} has {byValue.Count} different values: {string.Join("; ", values)}; decide which is right and define it once");
        }
    }

    /// <summary>A named literal; values compare by meaning (0x10 = 16, 1_000 = 1000.0, 'a' = "a").</summary>
    private sealed record Constant(string Name, string Literal, string File, int Line)
    {
        public string Place => $"{File}:{Line}";

        public bool IsString => Literal[0] is '"' or '\'';

        public string NormalizedValue => IsString ? "s:" + Literal[1..^1] : "n:" + NormalizeNumber(Literal);

        /// <summary>The value as shown in messages; string values that may be credentials are redacted.</summary>
        public string Display
        {
            get
            {
                if (!IsString)
                    return Literal;
                var text = Literal[1..^1];
                if (SecretText.MayBeSecret(Name, text))
                    return SecretText.Redact(text);
                return text.Length <= 40 ? $"\"{text}\"" : $"\"{text[..40]}…\"";
            }
        }

        private static string NormalizeNumber(string literal)
        {
            var text = literal.Replace("_", "", StringComparison.Ordinal);
            var negative = text.StartsWith('-');
            var digits = negative ? text[1..] : text;
            if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                return ulong.TryParse(digits[2..].TrimEnd('u', 'U', 'l', 'L'), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex)
                    ? (negative ? "-" : "") + hex.ToString(CultureInfo.InvariantCulture)
                    : text;
            }
            return decimal.TryParse(text.TrimEnd('u', 'U', 'l', 'L', 'f', 'F', 'd', 'D', 'm', 'M', 'n'), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                ? number.ToString("G29", CultureInfo.InvariantCulture)
                : text;
        }
    }

    // NAME = literal, optionally after modifiers and a type ("public const int", "export const",
    // "static final String", "pub const NAME: u32") and before a type annotation ("NAME: int = 5").
    [GeneratedRegex(@"^(?<indent>\s*)(?<modifiers>(?:(?:export|public|private|protected|internal|static|readonly|final|const|let|var|val|declare|pub(?:\([^)]*\))?)\s+)+)?(?:[A-Za-z_][\w.<>\[\]?]*\s+)?"
        + ConstantName + @"\s*(?::\s*&?(?:'\w+\s+)?[\w.<>\[\]]+\s*)?=\s*(?<value>" + NumberLiteral + "|" + StringLiteral + ")" + LineEnd,
        RegexOptions.CultureInvariant)]
    private static partial Regex ConstantDeclaration();

    [GeneratedRegex(@"^\s*#\s*define\s+" + ConstantName + @"\s+(?<value>" + NumberLiteral + "|" + StringLiteral + ")" + LineEnd, RegexOptions.CultureInvariant)]
    private static partial Regex DefineDirective();
}
