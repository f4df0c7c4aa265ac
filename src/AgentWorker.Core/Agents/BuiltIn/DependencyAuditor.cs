using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Supply-chain hygiene: what a build pulls in should be what was reviewed. Reports versions that
/// float, git dependencies and actions that follow a branch, npm projects without a lock file, base
/// images without a tag, and scripts piped from the network straight into a shell.
/// </summary>
internal sealed partial class DependencyAuditor : IBuiltInAgent
{
    private static readonly string[] NpmLockFiles =
        ["package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb"];

    private static readonly string[] ScriptExtensions = [".sh", ".bash", ".zsh", ".ksh", ".mk"];

    public string Id => "dependency_auditor";

    public string Description => "Finds floating versions, branch-pinned git dependencies, missing lock files, untagged base images and curl-pipe-to-shell.";

    public void Run(string workspace, string? prompt, AgentOutput output, CancellationToken cancellationToken)
    {
        output.Progress(0, $"{Id}: auditing dependency declarations");
        var report = new AuditReport(Id);
        var files = RepositoryFiles.List(workspace, output, cancellationToken);
        foreach (var file in files.ReadTextFiles(cancellationToken))
        {
            var dependencies = DependencyManifests.Read(file, output);
            foreach (var dependency in dependencies)
                CheckDependency(dependency, report);
            if (file.Name == "package.json" && dependencies.Count > 0 && !HasNpmLockFile(files, file.Path))
            {
                report.Add("medium", "missing-lockfile", file.Path, null,
                    "package.json has dependencies but no lock file (package-lock.json, yarn.lock or pnpm-lock.yaml) here or in a parent directory; "
                    + "every install resolves ranges anew — commit the lock file");
            }
            if (Dockerfiles.IsDockerfile(file.Name))
                CheckImages(file, Dockerfiles.BaseImages(file), "base image", report);
            else if (Dockerfiles.IsComposeFile(file.Name))
                CheckImages(file, Dockerfiles.ComposeImages(file), "service image", report);
            if (IsWorkflow(file.Path))
                CheckActions(file, report);
            if (IsScript(file))
                CheckPipeToShell(file, report);
        }
        report.Publish(output, files.FilesRead);
    }

    private static void CheckDependency(DeclaredDependency dependency, AuditReport report)
    {
        var (name, spec, file, line) = (dependency.Name, dependency.Spec, dependency.File, dependency.Line);
        if (dependency.Git is { } git)
        {
            if (git.IsMutable)
                report.Add("medium", "unpinned-git-dependency", file, line,
                    $"\"{name}\" is fetched from git at {git.Describe()}, so its content can change without a manifest change; pin a commit");
            return;
        }
        switch (dependency.Ecosystem)
        {
            case DeclaredDependency.Npm when IsFloatingNpm(spec):
            case DeclaredDependency.Cargo when HasNoUpperBound(spec):
                report.Add("medium", "floating-version", file, line,
                    $"\"{name}\" accepts any future release (\"{spec}\" in {dependency.Section}); declare a version range with an upper bound");
                break;
            case DeclaredDependency.NuGet when spec.Contains('*', StringComparison.Ordinal) || OpenNuGetRange().IsMatch(spec):
                report.Add("medium", "floating-version", file, line,
                    $"\"{name}\" uses the floating version \"{spec}\", so restores pick up new releases unreviewed; pin an exact version");
                break;
            case DeclaredDependency.PyPI when !dependency.IsExactPythonPin:
                report.Add("low", "unpinned-dependency", file, line,
                    $"\"{name}\" is not pinned with == ({(spec.Length == 0 ? "no version" : $"\"{spec}\"")}); pin it or compile the file from a lock (pip-tools, uv)");
                break;
        }
    }

    /// <summary>
    /// Tags such as "latest", "*" and ranges without an upper bound float even with a lock file (the next
    /// update takes any major); caret and tilde ranges are bounded and left to the lock file.
    /// </summary>
    private static bool IsFloatingNpm(string spec)
    {
        if (spec.StartsWith("npm:", StringComparison.Ordinal))
            spec = spec[(spec.LastIndexOf('@') + 1)..];
        return DistTag().IsMatch(spec) || HasNoUpperBound(spec);
    }

    private static bool HasNoUpperBound(string spec) =>
        spec.Split("||").Any(alternative =>
        {
            var range = alternative.Trim();
            return range is "" or "*" or "x" or "X"
                || (range.Contains('>', StringComparison.Ordinal) && !range.Contains('<', StringComparison.Ordinal) && !range.Contains(" - ", StringComparison.Ordinal));
        });

    private static bool HasNpmLockFile(RepositoryFiles files, string packageJson)
    {
        for (var directory = Path.GetDirectoryName(packageJson); directory is not null; directory = Path.GetDirectoryName(directory))
        {
            var prefix = directory.Length == 0 ? "" : directory.Replace('\\', '/') + "/";
            if (NpmLockFiles.Any(lockFile => files.Exists(prefix + lockFile)))
                return true;
        }
        return false;
    }

    private static void CheckImages(TextFile file, IEnumerable<Dockerfiles.ImageReference> images, string role, AuditReport report)
    {
        foreach (var image in images.Where(i => !i.IsPinned))
        {
            var problem = image.Tag is null ? "has no tag" : "uses the moving \"latest\" tag";
            report.Add("medium", "unpinned-base-image", file.Path, image.Line,
                $"{role} \"{image}\" {problem}, so rebuilds get whatever was pushed last; pin a version tag or a digest");
        }
    }

    private static bool IsWorkflow(string path) =>
        (path.StartsWith(".github/workflows/", StringComparison.Ordinal) || Path.GetFileName(path) is "action.yml" or "action.yaml")
        && (path.EndsWith(".yml", StringComparison.Ordinal) || path.EndsWith(".yaml", StringComparison.Ordinal));

    private static void CheckActions(TextFile file, AuditReport report)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            if (ActionReference().Match(file.Lines[i]) is not { Success: true } uses)
                continue;
            var git = GitReference.Guess(uses.Groups["ref"].Value);
            if (git.IsMutable)
                report.Add("medium", "unpinned-git-dependency", file.Path, i + 1,
                    $"action \"{uses.Groups["action"].Value}\" runs whatever is on {git.Describe()}; pin a commit SHA");
        }
    }

    private static bool IsScript(TextFile file) =>
        Dockerfiles.IsDockerfile(file.Name)
        || ScriptExtensions.Contains(file.Extension)
        || file.Name is "Makefile" or "makefile" or "GNUmakefile" or ".gitlab-ci.yml"
        || IsWorkflow(file.Path)
        || (file.Lines.Count > 0 && ShellShebang().IsMatch(file.Lines[0]));

    private static void CheckPipeToShell(TextFile file, AuditReport report)
    {
        foreach (var (line, text) in file.LogicalLines())
        {
            if (PipeToShell().IsMatch(text))
                report.Add("high", "pipe-to-shell", file.Path, line,
                    "a script downloaded with curl/wget is executed directly by a shell, unverified; download it, check a checksum or signature, then run it");
        }
    }

    // npm dist-tags ("latest", "next", "beta"): names, not versions ("v1.2.3" is a version).
    [GeneratedRegex(@"^(?!v\d)[A-Za-z][A-Za-z0-9._-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex DistTag();

    // NuGet interval notation with no upper end: "[1.0,)" or "(1.0,)".
    [GeneratedRegex(@"^[\[(][^,]*,\s*\)$", RegexOptions.CultureInvariant)]
    private static partial Regex OpenNuGetRange();

    [GeneratedRegex(@"^\s*(?:-\s*)?uses:\s*[""']?(?<action>[A-Za-z0-9_.-]+/[^@\s""'#]+)@(?<ref>[^\s""'#]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ActionReference();

    [GeneratedRegex(@"^#!.*\b(?:ba|z|k|da)?sh\b", RegexOptions.CultureInvariant)]
    private static partial Regex ShellShebang();

    // "curl URL | sh", "wget -qO- URL | sudo bash", "bash <(curl URL)", "sh -c "$(curl URL)"".
    [GeneratedRegex(@"\b(?:curl|wget)\b[^|;&\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:/usr/bin/|/bin/)?(?:ba|z|k|da)?sh\b|\b(?:ba|z|k|da)?sh\s+(?:-\S+\s+)*(?:<\(|[""']?\$\()\s*(?:curl|wget)\b", RegexOptions.CultureInvariant)]
    private static partial Regex PipeToShell();
}
