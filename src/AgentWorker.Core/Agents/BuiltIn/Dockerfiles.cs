using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>Container image references in Dockerfiles and compose files.</summary>
internal static partial class Dockerfiles
{
    /// <summary>A registry image a build starts from; <see cref="Tag"/> and <see cref="Digest"/> are null when absent.</summary>
    public sealed record ImageReference(string Name, string? Tag, string? Digest, int Line)
    {
        public bool IsPinned => Digest is not null || (Tag is not null && Tag != "latest");

        public override string ToString() => Name + (Tag is null ? "" : $":{Tag}") + (Digest is null ? "" : $"@{Digest}");
    }

    public static bool IsDockerfile(string name) =>
        name.Equals("Dockerfile", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Containerfile", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Dockerfile.", StringComparison.OrdinalIgnoreCase)
        || name.EndsWith(".dockerfile", StringComparison.OrdinalIgnoreCase);

    public static bool IsComposeFile(string name) => ComposeFileName().IsMatch(name);

    /// <summary>
    /// The registry images of FROM lines. Skipped: "scratch", earlier build stages ("FROM build") and
    /// references built from build arguments, whose value is only known at build time.
    /// </summary>
    public static IEnumerable<ImageReference> BaseImages(TextFile file)
    {
        var stages = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (line, text) in file.LogicalLines())
        {
            if (FromInstruction().Match(text) is not { Success: true } from)
                continue;
            var image = from.Groups["image"].Value;
            var isEarlierStage = stages.Contains(image);
            if (from.Groups["stage"].Success)
                stages.Add(from.Groups["stage"].Value);
            if (isEarlierStage || image.Equals("scratch", StringComparison.OrdinalIgnoreCase) || image.Contains('$', StringComparison.Ordinal))
                continue;
            yield return Parse(image, line);
        }
    }

    /// <summary>The "image:" entries of a compose file.</summary>
    public static IEnumerable<ImageReference> ComposeImages(TextFile file)
    {
        for (var i = 0; i < file.Lines.Count; i++)
        {
            if (ComposeImage().Match(file.Lines[i]) is { Success: true } match && !match.Groups["image"].Value.Contains('$', StringComparison.Ordinal))
                yield return Parse(match.Groups["image"].Value, i + 1);
        }
    }

    private static ImageReference Parse(string reference, int line)
    {
        string? digest = null;
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
            (reference, digest) = (reference[..at], reference[(at + 1)..]);
        // A colon before the last slash is a registry port ("registry:5000/app"), not a tag.
        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/')
            ? new ImageReference(reference[..colon], reference[(colon + 1)..], digest, line)
            : new ImageReference(reference, null, digest, line);
    }

    [GeneratedRegex(@"^\s*FROM\s+(?:--\S+\s+)*(?<image>[^\s#]+)(?:\s+AS\s+(?<stage>\S+))?", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex FromInstruction();

    [GeneratedRegex(@"^(?:docker-)?compose(?:[.-][\w.-]+)?\.ya?ml$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ComposeFileName();

    [GeneratedRegex(@"^\s*image:\s*[""']?(?<image>[^\s""'#]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ComposeImage();
}
