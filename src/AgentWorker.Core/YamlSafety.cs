using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace AgentWorker.Core;

/// <summary>
/// What must be refused in an operator's YAML file (config, agent registry) before YamlDotNet deserializes it:
/// its deserializers recurse once per nesting level, so a few thousand nested brackets overflow the stack and
/// kill the process, and its scanner reports some malformed input (a bad surrogate escape, a broken plain scalar)
/// as an ArgumentException or InvalidOperationException rather than a YamlException. Its parser is iterative, so
/// walking the events first is safe at any depth.
/// </summary>
internal static class YamlSafety
{
    /// <summary>Deeper than any real config or registry needs (a registry entry is three levels deep).</summary>
    public const int MaxDepth = 64;

    /// <summary>The line and problem of the first unsafe construct in <paramref name="text"/>; null when there is none.</summary>
    /// <remarks>Syntax errors are left to the deserializer, which reports them with their line.</remarks>
    public static (long Line, string Problem)? FindUnsafe(string text)
    {
        var parser = new Parser(new StringReader(text));
        var depth = 0;
        try
        {
            while (parser.MoveNext())
            {
                if (parser.Current is MappingStart or SequenceStart)
                {
                    if (++depth > MaxDepth)
                        return (parser.Current.Start.Line, $"nested more than {MaxDepth} levels deep");
                }
                else if (parser.Current is MappingEnd or SequenceEnd)
                {
                    depth--;
                }
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return (parser.Current?.End.Line ?? 1, "cannot be read as YAML (an escape that is no character, e.g. a lone surrogate \\ud800, or a malformed scalar)");
        }
        catch (YamlException)
        {
        }
        return null;
    }
}
