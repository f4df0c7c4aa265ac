using System.Globalization;
using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Just enough of npm semver ranges and PEP 440 specifiers to tell whether a pinned runtime version can
/// satisfy a declared range. A pinned version is read as the set of versions sharing its prefix ("20"
/// is every 20.x), so only real contradictions count; anything not understood is assumed to fit.
/// </summary>
internal static partial class VersionRange
{
    /// <summary>The leading numeric components of a version ("v20.11.1-alpine" → [20, 11, 1]), or null.</summary>
    public static int[]? ParseVersion(string text)
    {
        var match = LeadingVersion().Match(text.Trim());
        return match.Success ? Components(match.Groups["version"].Value) : null;
    }

    /// <summary>Whether some version starting with <paramref name="pinned"/> is inside <paramref name="range"/>.</summary>
    public static bool Admits(string range, int[] pinned) =>
        range.Split("||").Any(alternative => AdmitsAll(HyphenRange().Replace(alternative, ">=${low} <=${high}"), pinned));

    private static bool AdmitsAll(string alternative, int[] pinned)
    {
        foreach (Match comparator in Comparator().Matches(alternative))
        {
            var bound = Components(comparator.Groups["version"].Value);
            var admitted = comparator.Groups["op"].Value switch
            {
                ">=" or ">" => Compare(pinned, bound) >= 0,
                "<=" => Compare(pinned, bound) <= 0,
                "<" => Compare(pinned, bound) < 0 || (Compare(pinned, bound) == 0 && bound.Skip(pinned.Length).Any(c => c > 0)),
                "^" => Compare(pinned, bound) >= 0 && Compare(pinned, CaretCeiling(bound)) < 0,
                "~" => Compare(pinned, bound) >= 0 && Compare(pinned, TildeCeiling(bound)) < 0,
                "~=" => Compare(pinned, bound) >= 0 && SharesPrefix(pinned, bound[..^1]),
                "!=" => true,
                _ => SharesPrefix(pinned, bound),
            };
            if (!admitted)
                return false;
        }
        return true;
    }

    /// <summary>Compares on the pinned version's own precision: [20] against 20.5.0 is equal.</summary>
    private static int Compare(int[] pinned, int[] bound)
    {
        for (var i = 0; i < pinned.Length; i++)
        {
            var order = pinned[i].CompareTo(i < bound.Length ? bound[i] : 0);
            if (order != 0)
                return order;
        }
        return 0;
    }

    private static bool SharesPrefix(int[] pinned, int[] bound) =>
        pinned.Zip(bound).All(pair => pair.First == pair.Second);

    // ^1.2.3 := <2.0.0, ^0.2.3 := <0.3.0, ^0.0.3 := <0.0.4
    private static int[] CaretCeiling(int[] bound)
    {
        var first = Array.FindIndex(bound, c => c != 0);
        if (first < 0)
            first = bound.Length - 1;
        return [.. bound[..first], bound[first] + 1];
    }

    // ~1.2.3 := <1.3.0, ~1 := <2.0.0
    private static int[] TildeCeiling(int[] bound) => bound.Length >= 2 ? [bound[0], bound[1] + 1] : [bound[0] + 1];

    /// <summary>Numeric components up to the first wildcard ("1.x" → [1]) or one too large to be a version.</summary>
    private static int[] Components(string version)
    {
        var components = new List<int>();
        foreach (var part in version.Split('.'))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var component))
                break;
            components.Add(component);
        }
        return [.. components];
    }

    [GeneratedRegex(@"^v?(?<version>\d+(?:\.\d+)*)", RegexOptions.CultureInvariant)]
    private static partial Regex LeadingVersion();

    [GeneratedRegex(@"(?<op>>=|<=|~=|==|!=|[<>=^~])?\s*v?(?<version>\d+(?:\.(?:\d+|[xX*]))*)", RegexOptions.CultureInvariant)]
    private static partial Regex Comparator();

    [GeneratedRegex(@"(?<low>\d+(?:\.\d+)*)\s+-\s+(?<high>\d+(?:\.\d+)*)", RegexOptions.CultureInvariant)]
    private static partial Regex HyphenRange();
}
