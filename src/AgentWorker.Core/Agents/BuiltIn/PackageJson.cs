using System.Text;
using System.Text.Json;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// The parts of a package.json the agents read, with the line each value is on. Read with
/// <see cref="Utf8JsonReader"/> because a DOM does not keep positions and findings need line numbers.
/// </summary>
internal sealed record PackageJson(
    IReadOnlyList<PackageJson.Entry> Dependencies,
    PackageJson.Entry? NodeEngine)
{
    public static readonly IReadOnlyList<string> DependencySections =
        ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"];

    /// <summary>A string property of a section: a dependency (name, version spec) or an engine (runtime, range).</summary>
    public sealed record Entry(string Section, string Name, string Value, int Line);

    /// <summary>The parsed manifest, or null when the file is not a JSON object.</summary>
    public static PackageJson? Read(TextFile file)
    {
        var bytes = Encoding.UTF8.GetBytes(file.Text);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions
        {
            AllowTrailingCommas = true,
            CommentHandling = JsonCommentHandling.Skip,
        });
        var dependencies = new List<Entry>();
        Entry? nodeEngine = null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var section = reader.GetString()!;
                reader.Read();
                var wanted = section == "engines" || DependencySections.Contains(section);
                if (!wanted || reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var name = reader.GetString()!;
                    var line = LineAt(bytes, reader.TokenStartIndex);
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        reader.Skip();
                        continue;
                    }
                    var entry = new Entry(section, name, reader.GetString()!, line);
                    if (section != "engines")
                        dependencies.Add(entry);
                    else if (name == "node")
                        nodeEngine = entry;
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }
        return new PackageJson(dependencies, nodeEngine);
    }

    private static int LineAt(byte[] bytes, long offset) => bytes.AsSpan(0, (int)offset).Count((byte)'\n') + 1;
}
