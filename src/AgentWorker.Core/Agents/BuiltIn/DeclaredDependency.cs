using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// One dependency as a manifest declares it. <see cref="Spec"/> is the version requirement exactly as
/// written (empty when there is none); <see cref="Git"/> is set instead for dependencies fetched from a
/// git repository.
/// </summary>
internal sealed partial record DeclaredDependency(
    string Ecosystem,
    string Name,
    string Spec,
    string Section,
    string File,
    int Line,
    GitReference? Git = null)
{
    public const string Npm = "npm";
    public const string PyPI = "pypi";
    public const string NuGet = "nuget";
    public const string Go = "go";
    public const string Cargo = "cargo";

    /// <summary>The name as the ecosystem compares it: PEP 503 for PyPI, case-insensitive for NuGet.</summary>
    public string Key => Ecosystem switch
    {
        PyPI => PythonNameSeparators().Replace(Name, "-").ToLowerInvariant(),
        NuGet => Name.ToLowerInvariant(),
        _ => Name,
    };

    /// <summary>A PyPI requirement pinned to exactly one version ("==1.2.3"); anything else lets pip choose.</summary>
    public bool IsExactPythonPin =>
        Ecosystem == PyPI && Spec.StartsWith("==", StringComparison.Ordinal)
        && !Spec.Contains('*', StringComparison.Ordinal) && !Spec.Contains(',', StringComparison.Ordinal);

    [GeneratedRegex(@"[-_.]+", RegexOptions.CultureInvariant)]
    private static partial Regex PythonNameSeparators();
}

internal enum GitRefKind
{
    None,
    Branch,
    Tag,
    Commit,
}

/// <summary>
/// The ref a git dependency tracks. The repository URL is deliberately not kept: URLs in manifests can
/// carry credentials and these values end up in finding messages.
/// </summary>
internal sealed partial record GitReference(string? Ref, GitRefKind Kind)
{
    /// <summary>Whether the ref can move under the dependant: a branch, or no ref at all (the default branch).</summary>
    public bool IsMutable => Kind is GitRefKind.None or GitRefKind.Branch;

    public string Describe() => Kind switch
    {
        GitRefKind.None => "no ref (the default branch)",
        GitRefKind.Commit => $"commit {Ref}",
        GitRefKind.Tag => $"tag '{Ref}'",
        _ => $"branch '{Ref}'",
    };

    /// <summary>
    /// Classifies a ref whose kind the manifest does not state (npm "#ref", pip "@ref", Actions "@ref"):
    /// hex of commit length is a commit, a version-like name or "semver:" range is a tag, anything else
    /// is taken to be a branch.
    /// </summary>
    public static GitReference Guess(string? reference)
    {
        if (string.IsNullOrWhiteSpace(reference))
            return new(null, GitRefKind.None);
        if (CommitHash().IsMatch(reference))
            return new(reference, GitRefKind.Commit);
        if (reference.StartsWith("semver:", StringComparison.Ordinal) || VersionTag().IsMatch(reference))
            return new(reference, GitRefKind.Tag);
        return new(reference, GitRefKind.Branch);
    }

    [GeneratedRegex(@"^[0-9a-fA-F]{7,40}$", RegexOptions.CultureInvariant)]
    private static partial Regex CommitHash();

    [GeneratedRegex(@"^v?\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.-]+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex VersionTag();
}
