using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace AgentWorker.Tests.Fuzz;

/// <summary>
/// FsCheck generators of hostile input: text full of the characters parsers and stores trip over, JSON texts
/// written by hand (so they can hold what a serializer would refuse: lone surrogate escapes, numbers out of
/// range, repeated keys, deep nesting), job-shaped bodies whose every field is missing, right, wrong-typed or
/// garbage, and mutations of all of these down to raw bytes.
/// </summary>
internal static class FuzzInputs
{
    // NUL and other controls, lone surrogate halves, BOM, bidi override, line separators, a combining mark,
    // quotes, and path, URL and shell metacharacters.
    private static readonly char[] AwkwardChars =
    [
        '\0', '\u0001', '\t', '\n', '\r', '\u001f', '\u007f', '\u0085', '\u00a0', '\u00e9', '\u0301', '\u2028', '\u202e',
        '\ufeff', '\uffff', '\ud800', '\udbff', '\udc00', '\udfff', '"', '\\', '\'', '/', '.', ':', '@', '-', '$', '`',
        '{', '}', '%', '*', '~', ' ', '=', '&', '?', '#',
    ];

    private static readonly string[] EdgeStrings =
    [
        "", " ", "null", "true", "0", "-1", "../../etc/passwd", "/", "-oProxyCommand=x", "--upload-pack=x", "ext::sh -c x",
        "\ud83d\ude00", "a\u0000b", "{prompt}", "{workspace}", "$(id)", "%s%n%x", "dry_run", "apply", "none", "mcp_only", "full",
        "2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "not-a-date", new string('a', 129), new string('x', 5000),
    ];

    private static readonly string[] NumberLiterals =
    [
        "0", "-0", "1", "-1", "3", "100", "101", "1000", "1001", "86400", "86401", "2147483647", "2147483648", "-2147483649",
        "9223372036854775808", "1e308", "1e400", "-1e400", "1.5", "0.0000001", "1E+2", "1e-400", "100000000000000000000000000000",
    ];

    public static readonly Gen<string> Text = Gen.Frequency(
        (3, ArbMap.Default.GeneratorFor<string>().Select(s => s ?? "")),
        (3, Gen.Elements(EdgeStrings)),
        (3, Gen.Choose(0, 40).SelectMany(n => Gen.Elements(AwkwardChars).Or(Gen.Choose(32, 126).Select(c => (char)c)).ArrayOf(n)).Select(chars => new string(chars))),
        (1, Gen.Choose(0, 20_000).Select(n => new string('z', n))));

    /// <summary>A JSON string literal. Controls and lone surrogate halves are written as \u escapes, which is how they reach a parser.</summary>
    public static string Quote(string text)
    {
        var json = new StringBuilder("\"");
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var paired = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (paired)
            {
                json.Append(c).Append(text[++i]);
            }
            else if (c is '"' or '\\')
            {
                json.Append('\\').Append(c);
            }
            else if (c < ' ' || char.IsSurrogate(c))
            {
                json.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                json.Append(c);
            }
        }
        return json.Append('"').ToString();
    }

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (1, Gen.Elements("null", "true", "false")),
        (2, Gen.Elements(NumberLiterals)),
        (1, Gen.Choose(-1000, 1000).Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (4, Text.Select(Quote)));

    /// <summary>Any JSON value up to <paramref name="depth"/> levels of arrays and objects.</summary>
    public static Gen<string> Value(int depth) => depth <= 0
        ? Scalar
        : Gen.Frequency(
            (6, Scalar),
            (1, Gen.Choose(0, 4).SelectMany(n => Value(depth - 1).ListOf(n)).Select(items => $"[{string.Join(',', items)}]")),
            (1, Gen.Choose(0, 4).SelectMany(n => Gen.Zip(Text, Value(depth - 1)).ListOf(n))
                .Select(pairs => $"{{{string.Join(',', pairs.Select(p => $"{Quote(p.Item1)}:{p.Item2}"))}}}")));

    /// <summary>Any JSON value but a string, for fields whose strings must stay in a chosen pool.</summary>
    private static readonly Gen<string> NonString = Value(2).Where(v => !v.StartsWith('"'));

    /// <summary>Arrays nested around the parsers' depth limits and far beyond.</summary>
    private static readonly Gen<string> DeepNesting =
        Gen.Elements(63, 64, 65, 200, 5_000).Select(n => new string('[', n) + new string(']', n));

    /// <summary>
    /// What a job body's field holds: absent (null) or a valid value; from hostility 1 also values that look right
    /// and are not (<paramref name="edge"/>); from hostility 2 also any JSON at all.
    /// </summary>
    private static Gen<string?> Field(int hostility, Gen<string> valid, Gen<string>? edge = null, Gen<string>? garbage = null)
    {
        var choices = new List<(int, Gen<string?>)> { (5, Gen.Constant<string?>(null)), (4, valid.Select(v => (string?)v)) };
        if (hostility >= 1 && edge is not null)
            choices.Add((1, edge.Select(v => (string?)v)));
        if (hostility >= 2)
            choices.Add((1, (garbage ?? Value(2)).Select(v => (string?)v)));
        return Gen.Frequency(choices);
    }

    /// <summary>Text a store can keep: no NUL, no lone surrogate.</summary>
    public static readonly Gen<string> StorableText = Text.Where(t => !t.Contains('\0', StringComparison.Ordinal) && !HasLoneSurrogate(t));

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                i++;
            else if (char.IsSurrogate(text[i]))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Job-shaped JSON objects in all three accepted shapes, a third each of hostility 0 (every field absent or valid:
    /// these are accepted unless their fields contradict each other), 1 (plausible mistakes) and 2 (any JSON anywhere).
    /// The vocabulary's agents and repository URLs are the only strings that reach those fields, so a caller that runs
    /// the accepted jobs decides what they may clone.
    /// </summary>
    public static Gen<string> JobBody(JobVocabulary words) =>
        Gen.Elements(0, 1, 2).SelectMany(hostility => JobBody(words, hostility));

    private static Gen<string> JobBody(JobVocabulary words, int hostility)
    {
        Gen<string?> Field(Gen<string> valid, Gen<string>? edge = null, Gen<string>? garbage = null) => FuzzInputs.Field(hostility, valid, edge, garbage);
        Gen<string> Quoted(params string[] values) => Gen.Elements(values).Select(Quote);

        var agent = Gen.Elements(words.Agents).Select(Quote);
        var otherAgent = Gen.Elements(words.OtherAgents).Select(Quote);
        var url = Gen.Elements(words.RepoUrls).Select(Quote);
        var otherUrl = Gen.Elements(words.OtherRepoUrls).Select(Quote);
        Gen<string> Number(int min, int max) => Gen.Choose(min, max).Select(i => i.ToString(CultureInfo.InvariantCulture));
        var badNumber = Gen.Elements(NumberLiterals);
        var branch = Field(Quoted("main", "feature/x", "release-1.0"), Quoted("..", "-x", "a b", "x~1", "--force"));
        var commit = Field(Quoted("abcd", "0123456789abcdef0123456789abcdef01234567"), Quoted("xyz", "abc", "g00d"));
        // The repository and the agent: one field of each named in one of the shapes' spellings, always there at hostility 0.
        var repo = Gen.Elements("repo", "repoUrl", "repo_url").SelectMany(name => name == "repo"
            ? Gen.Zip(Gen.Zip(Field(url, otherUrl, NonString), branch), commit)
                .Select(t => (name, (string?)Object([("url", t.Item1.Item1 ?? (hostility == 0 ? Quote(words.RepoUrls[0]) : null)), ("branch", t.Item1.Item2), ("commit", t.Item2)])))
            : Field(url, otherUrl, NonString).Select(v => (name, v ?? (hostility == 0 ? Quote(words.RepoUrls[0]) : null))));
        var agentField = Gen.Elements("agent", "agentId", "agent_id").SelectMany(name =>
            Field(agent, otherAgent).Select(v => (name, v ?? (hostility == 0 ? Quote(words.Agents[0]) : null))));
        (string Name, Gen<string?> Value)[] fields =
        [
            ("id", Field(Number(0, 1_000_000).Select(i => Quote($"fuzz-{i}")), Quoted("", "has space", "a/b", new string('i', 129)))),
            ("branch", branch), ("commit", commit),
            ("prompt", Field(StorableText.Select(Quote), Text.Select(Quote))),
            ("mode", Field(Quoted("dry_run"), Quoted("apply", "DRY_RUN", "plan"))),
            ("network", Field(Quoted("none", "allowlist", "full"), Quoted("mcp_only", "host"))),
            ("mcpUrl", Field(Quoted("http://127.0.0.1:1/mcp", "ws://[::1]:1/"), Quoted("ftp://127.0.0.1/x", "not a url", "/relative"))),
            ("mcp_connection_url", Field(Quoted("http://127.0.0.1:1/mcp"), Quoted("relative/mcp"))),
            ("timeoutSeconds", Field(Number(1, 86_400), badNumber)), ("timeout_seconds", Field(Number(1, 86_400), badNumber)),
            ("maxAttempts", Field(Number(1, 100), badNumber)), ("max_attempts", Field(Number(1, 100), badNumber)),
            ("priority", Field(Number(-1_000, 1_000), badNumber)),
            ("runAt", Field(Quoted("2026-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00"), Gen.Elements(EdgeStrings).Select(Quote))),
            ("requestedAt", Field(Quoted("2026-01-01T00:00:00Z"), Gen.Elements(EdgeStrings).Select(Quote))),
            ("metadata", Field(Quoted("x").Select(v => $"{{\"k\":{v},\"n\":[1,2]}}"), Value(2))),
        ];
        var known = Gen.CollectToList(fields, f => f.Value.Select(v => (f.Name, v)));
        var extraValue = hostility == 0 ? StorableText.Select(Quote) : Value(hostility);
        var extra = Gen.Choose(0, hostility + 1).SelectMany(n => Gen.Zip(hostility == 0 ? StorableText : Text, extraValue.Select(v => (string?)v)).ListOf(n));
        var repeated = hostility == 0 ? Gen.Constant(false) : Gen.Frequency((9, Gen.Constant(false)), (hostility, Gen.Constant(true)));
        return
            from core in Gen.Zip(repo, agentField)
            from rest in Gen.Zip(known, extra)
            from twice in repeated
            select Object(Members(core, rest, twice));
    }

    private static List<(string Name, string? Value)> Members(
        ((string, string?) Repo, (string, string?) Agent) core, (List<(string, string?)> Known, List<(string, string?)> Extra) rest, bool twice)
    {
        List<(string Name, string? Value)> members = [core.Repo, core.Agent, .. rest.Known, .. rest.Extra];
        // A key given twice: parsers disagree on which one wins, so it must be refused.
        if (twice && members.FirstOrDefault(m => m.Value is not null) is { Value: not null } first)
            members.Add(first);
        return members;
    }

    private static string Object(IEnumerable<(string Name, string? Value)> members) =>
        $"{{{string.Join(',', members.Where(m => m.Value is not null).Select(m => $"{Quote(m.Name)}:{m.Value}"))}}}";

    /// <summary>A body as sent: a job-shaped object, any JSON, deep nesting, or any of these cut, spliced or replaced by raw bytes.</summary>
    public static Gen<byte[]> Body(JobVocabulary words)
    {
        var text = Gen.Frequency((8, JobBody(words)), (2, Value(3)), (1, DeepNesting), (1, Gen.Elements("", " ", "\ufeff{}", "{", "}", "{}", "[]", "null", "\"x\"", "{\"a\":1}{\"b\":2}")));
        var bytes = text.Select(Encoding.UTF8.GetBytes);
        return Gen.Frequency(
            (8, bytes),
            (2, Gen.Zip(bytes, Gen.Choose(0, 1_000)).Select(t => t.Item1[..Math.Min(t.Item2, t.Item1.Length)])),
            (1, Gen.Zip(bytes, Gen.Zip(Gen.Choose(0, 1_000), Gen.Choose(0, 255))).Select(t => Splice(t.Item1, t.Item2.Item1, (byte)t.Item2.Item2))),
            (1, Gen.Choose(0, 300).SelectMany(n => Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(n))));
    }

    private static byte[] Splice(byte[] body, int at, byte value)
    {
        var position = body.Length == 0 ? 0 : at % body.Length;
        return [.. body[..position], value, .. body[position..]];
    }

    /// <summary>Draws <paramref name="count"/> values; the seed goes into failure messages so a run can be repeated.</summary>
    public static T[] Sample<T>(Gen<T> gen, int count, ulong seed) => Gen.Sample(gen, count, new Rnd(seed), 30);

    /// <summary>A fresh seed, or FUZZ_SEED to repeat the run a failure message named.</summary>
    public static ulong NewSeed() =>
        Environment.GetEnvironmentVariable("FUZZ_SEED") is { Length: > 0 } seed
            ? ulong.Parse(seed, CultureInfo.InvariantCulture)
            : (ulong)Random.Shared.NextInt64(long.MaxValue);
}

/// <summary>
/// The strings a generated job body may put in its agent and repository fields: valid ones (registered agents,
/// acceptable URLs) and others the intake must refuse or the worker must fail on.
/// </summary>
internal sealed record JobVocabulary(string[] Agents, string[] OtherAgents, string[] RepoUrls, string[] OtherRepoUrls);
