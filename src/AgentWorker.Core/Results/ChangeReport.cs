using System.Globalization;

namespace AgentWorker.Core.Results;

/// <summary>
/// What the agent changed in its workspace, against the commit it started from; in apply mode, the commit made of it
/// and where it was pushed. The full diff is the job's <c>diff.patch</c> artifact.
/// </summary>
public sealed record ChangeReport(string CommitBefore, string? CommitAfter, string? PushedTo, DiffStat Diffstat)
{
    /// <summary>True when <c>diff.patch</c> was larger than MAX_DIFF_MB and is kept cut at that size (its last line says so).</summary>
    public bool DiffTruncated { get; init; }
}

/// <summary>One changed file; null line counts for binary files.</summary>
public sealed record FileChange(string Path, int? Insertions, int? Deletions);

/// <summary>Numbers from <c>git diff --shortstat</c> and the first files of <c>--numstat</c> (binary files count no lines).</summary>
public sealed record DiffStat(int FilesChanged, int Insertions, int Deletions, IReadOnlyList<FileChange> Files, bool FilesTruncated)
{
    public static DiffStat Parse(string shortStat, IReadOnlyList<string> numStat, int maxFiles)
    {
        // " 3 files changed, 10 insertions(+), 2 deletions(-)"; parts are left out when zero.
        int Count(string word)
        {
            var part = shortStat.Split(',').Select(p => p.Trim()).FirstOrDefault(p => p.Contains(word, StringComparison.Ordinal));
            return part is null ? 0 : int.Parse(part.Split(' ')[0], CultureInfo.InvariantCulture);
        }
        var files = new List<FileChange>();
        foreach (var line in numStat.Where(l => l.Length > 0).Take(maxFiles))
        {
            var fields = line.Split('\t', 3);
            if (fields.Length == 3)
                files.Add(new FileChange(fields[2], Lines(fields[0]), Lines(fields[1])));
        }
        return new DiffStat(Count("changed"), Count("insertion"), Count("deletion"), files, numStat.Count(l => l.Length > 0) > maxFiles);
    }

    private static int? Lines(string field) => int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
}
