namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>A text file of the workspace, addressed by its path relative to the workspace root.</summary>
internal sealed class TextFile(string path, string text)
{
    private string[]? lines;

    /// <summary>Relative to the workspace, with forward slashes: the form findings report.</summary>
    public string Path { get; } = path;

    public string Text { get; } = text;

    public string Name => System.IO.Path.GetFileName(Path);

    /// <summary>Lower-case extension with the dot, or empty.</summary>
    public string Extension => System.IO.Path.GetExtension(Path).ToLowerInvariant();

    /// <summary>Lines without terminators; index 0 is line 1.</summary>
    public IReadOnlyList<string> Lines => lines ??= Text.ReplaceLineEndings("\n").Split('\n');

    /// <summary>
    /// Lines with backslash continuations joined (Dockerfiles, shell scripts, requirements files),
    /// each tagged with the number of the line it starts on.
    /// </summary>
    public IEnumerable<(int Line, string Text)> LogicalLines()
    {
        var all = Lines;
        for (var i = 0; i < all.Count; i++)
        {
            var start = i;
            var current = all[i];
            while (current.EndsWith('\\') && i + 1 < all.Count)
                current = string.Concat(current.AsSpan(0, current.Length - 1), " ", all[++i]);
            yield return (start + 1, current);
        }
    }
}
