using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Finds runs of at least <see cref="Window"/> identical normalized lines in two places, with a rolling
/// hash over per-line hashes. Each window is paired with the first place it occurred, so N copies of a
/// block give N-1 findings rather than N² pairs; consecutive matching windows of one pair of places are
/// merged into one region.
/// </summary>
internal sealed partial class DuplicateBlocks(int maxIndexedLines = DuplicateBlocks.DefaultMaxIndexedLines)
{
    public const int Window = 8;
    public const int DefaultMaxIndexedLines = 2_000_000;
    private const ulong Base = 1_000_003;

    private static readonly ulong BasePower = Power(Base, Window - 1);

    private readonly List<IndexedFile> files = [];
    private readonly Dictionary<ulong, (int File, int Start)> firstWindows = [];
    private readonly List<(int OriginalFile, int OriginalStart, int File, int Start)> matches = [];
    private int indexedLines;

    /// <summary>A duplicated region: lines of <see cref="File"/> repeating lines of an earlier <see cref="OriginalFile"/>.</summary>
    public sealed record Region(string File, int FirstLine, int LastLine, string OriginalFile, int OriginalFirstLine, int OriginalLastLine, int Lines);

    /// <summary>Indexes a file; false once the line budget is spent, after which files are no longer indexed.</summary>
    public bool Add(TextFile file)
    {
        if (indexedLines >= maxIndexedLines)
            return false;
        var hashes = new List<ulong>();
        var lineNumbers = new List<int>();
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var line = file.Lines[i].Trim();
            if (IsSubstantive(line))
            {
                hashes.Add(Fnv1a(line));
                lineNumbers.Add(i + 1);
            }
        }
        indexedLines += hashes.Count;
        var fileIndex = files.Count;
        files.Add(new IndexedFile(file.Path, [.. hashes], [.. lineNumbers]));
        IndexWindows(fileIndex);
        return true;
    }

    public IEnumerable<Region> Regions()
    {
        var pairs = matches
            .GroupBy(m => (m.OriginalFile, m.File, Offset: m.Start - m.OriginalStart))
            .OrderBy(g => g.Key.File).ThenBy(g => g.Key.OriginalFile).ThenBy(g => g.Key.Offset);
        foreach (var pair in pairs)
        {
            var starts = pair.Select(m => m.Start).Order().ToList();
            var regionStart = starts[0];
            for (var i = 1; i <= starts.Count; i++)
            {
                // Windows that overlap or touch on the same offset are one duplicated region.
                if (i < starts.Count && starts[i] <= starts[i - 1] + Window)
                    continue;
                yield return ToRegion(pair.Key.OriginalFile, pair.Key.File, regionStart, starts[i - 1] + Window, pair.Key.Offset);
                if (i < starts.Count)
                    regionStart = starts[i];
            }
        }
    }

    private void IndexWindows(int fileIndex)
    {
        var hashes = files[fileIndex].Hashes;
        var window = 0UL;
        for (var i = 0; i < hashes.Length; i++)
        {
            unchecked
            {
                if (i >= Window)
                    window -= hashes[i - Window] * BasePower;
                window = window * Base + hashes[i];
            }
            if (i < Window - 1)
                continue;
            var start = i - Window + 1;
            if (!firstWindows.TryGetValue(window, out var first))
            {
                firstWindows[window] = (fileIndex, start);
                continue;
            }
            var sameLines = files[first.File].Hashes.AsSpan(first.Start, Window).SequenceEqual(hashes.AsSpan(start, Window));
            // Within one file, overlapping windows are a repetitive stretch of lines, not a copy.
            var overlapping = first.File == fileIndex && start < first.Start + Window;
            if (sameLines && !overlapping)
                matches.Add((first.File, first.Start, fileIndex, start));
        }
    }

    private Region ToRegion(int originalFile, int file, int start, int end, int offset)
    {
        var (copy, original) = (files[file], files[originalFile]);
        return new Region(
            copy.Path, copy.LineNumbers[start], copy.LineNumbers[end - 1],
            original.Path, original.LineNumbers[start - offset], original.LineNumbers[end - 1 - offset],
            end - start);
    }

    /// <summary>
    /// Lines that carry content. Blank and punctuation-only lines, comments (license headers) and import
    /// lists repeat across every file of a project and would make every file a "duplicate".
    /// </summary>
    private static bool IsSubstantive(string line) =>
        line.Length > 0 && line.Any(char.IsLetterOrDigit) && !Boilerplate().IsMatch(line);

    private static ulong Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text)
            hash = unchecked((hash ^ c) * 1099511628211UL);
        return hash;
    }

    private static ulong Power(ulong value, int exponent)
    {
        var result = 1UL;
        for (var i = 0; i < exponent; i++)
            result = unchecked(result * value);
        return result;
    }

    private sealed record IndexedFile(string Path, ulong[] Hashes, int[] LineNumbers);

    [GeneratedRegex(@"^(?://|/\*|\*|#(?:\s|!|$)|<!--|--\s|;|import\b|from\s+\S+\s+import\b|#include\b|using\s+(?:static\s+)?[\w.]+\s*(?:=\s*[\w.<>, ]+)?;$|package\s+[\w.]+;?$|use\s+[\w:{}, *]+;$|extern\s+crate\b|require\s*\(|(?:const|let|var)\s+\w+\s*=\s*require\s*\()", RegexOptions.CultureInvariant)]
    private static partial Regex Boilerplate();
}
