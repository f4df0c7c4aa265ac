using System.Globalization;
using System.Text;
using AgentWorker.Configuration;
using AgentWorker.Core.Agents;
using AgentWorker.Testing;
using FsCheck;
using FsCheck.Fluent;

namespace AgentWorker.Tests.Fuzz;

/// <summary>
/// The operator's files, generated: the config file (--config) and the agent registry (AGENTS_FILE). Loading
/// either ends in a usable configuration or in the one error type the CLI turns into a line naming the setting,
/// never in another exception (a stack trace and exit 1 instead of exit 2) or a crash.
/// </summary>
public sealed class ConfigFileFuzzTests : IDisposable
{
    private const int Cases = 2_000;

    private readonly TempDirectory _dir = new("aw-fuzz-config");

    private static readonly string[] PlainScalars =
    [
        "0", "-1", "1", "3000", "65536", "2147483648", "1e400", ".nan", ".inf", "-.inf", "0x10", "1_000", "true", "no", "~", "null", "''",
        "sqlite", "redis", "postgres", "bwrap", "none", "json", "text", "trace", "warn", "127.0.0.1", "::1", "0.0.0.0", "github.com", "/tmp/aw-fuzz",
        "relative/dir", "redis://127.0.0.1:1", "postgresql://u:p@127.0.0.1:1/db", "0.5", "30", "10",
    ];

    /// <summary>A YAML double-quoted scalar of any text: escapes let it hold NUL, controls and lone surrogates.</summary>
    private static string Quoted(string text)
    {
        var yaml = new StringBuilder("\"");
        foreach (var c in text)
        {
            yaml.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                _ when c < ' ' || char.IsSurrogate(c) || c is '\u007f' or '\ufeff' => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => c.ToString(),
            });
        }
        return yaml.Append('"').ToString();
    }

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (4, Gen.Elements(PlainScalars)),
        (3, FuzzInputs.Text.Select(Quoted)),
        (1, Gen.Elements("!!binary aGVsbG8=", "!!int \"x\"", "!custom x", "&a 1", "*undefined", "|\n  block\n  text", ">\n  folded", "'single ''quoted'''")));

    private static readonly Gen<string> Value = Gen.Frequency(
        (8, Scalar),
        (1, Gen.Choose(0, 3).SelectMany(n => Scalar.ListOf(n)).Select(items => $"[{string.Join(", ", items)}]")),
        (1, Gen.Choose(0, 3).SelectMany(n => Gen.Zip(Gen.Elements("a", "b", "memoryMb", "? x"), Scalar).ListOf(n))
            .Select(pairs => $"{{{string.Join(", ", pairs.Select(p => $"{p.Item1}: {p.Item2}"))}}}")),
        (1, Gen.Elements(64, 1_000, 10_000).Select(n => new string('[', n) + new string(']', n))));

    /// <summary>YAML text cut short, with a byte spliced in, or replaced by raw bytes.</summary>
    private static Gen<byte[]> Mutated(Gen<string> yaml) => Gen.Frequency(
        (8, yaml.Select(Encoding.UTF8.GetBytes)),
        (1, Gen.Zip(yaml, Gen.Choose(0, 400)).Select(t => Encoding.UTF8.GetBytes(t.Item1[..Math.Min(t.Item2, t.Item1.Length)]))),
        (1, Gen.Choose(0, 200).SelectMany(n => Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(n))));

    private static readonly Gen<byte[]> ConfigFile = Mutated(Gen.Frequency(
        (8, Gen.Choose(0, 6).SelectMany(n => Gen.Zip(Gen.Elements([.. Settings.All.Select(s => s.Key), "unknownKey", "PORT", "", "? [a]", "<<"]), Value).ListOf(n))
            .Select(pairs => string.Concat(pairs.Select(p => $"{p.Item1}: {p.Item2}\n")))),
        (1, Gen.Elements("", "---\n---\n", "- a\n- b\n", "just text", "port: 1\nport: 2\n", "a: &x [1]\nb: *x\n", "%YAML 9.9\n---\nport: 1\n")),
        (1, Value)));

    private static Gen<string?> Member(Gen<string> plausible) => Gen.Frequency(
        (4, Gen.Constant<string?>(null)), (5, plausible.Select(v => (string?)v)), (2, Value.Select(v => (string?)v)));

    private static readonly Gen<string> Entry = Gen.CollectToList(
        [
            ("id", Member(Gen.Elements("a", "noop", "bad id", "", "x".PadRight(129, 'x')))),
            ("command", Member(Gen.Elements("[\"true\"]", "[]", "[\"\"]", "[~]", "\"true\"", "[sh, -c, \"{prompt}\"]"))),
            ("description", Member(Scalar)),
            ("timeoutSeconds", Member(Gen.Elements("1", "0", "-5", "2147483648", "1.5", ".nan"))),
            ("env", Member(Gen.Elements("[OPENAI_API_KEY]", "[]", "[~]", "[\"\"]", "OPENAI_API_KEY", "[\"A=B\"]"))),
            ("network", Member(Gen.Elements("none", "mcp_only", "allowlist", "full", "host"))),
            ("allowHosts", Member(Gen.Elements("[api.openai.com]", "[\"*.example.com:8443\"]", "[]", "[~]", "[\"bad host\"]", "[\"a.test:0\"]", "api.openai.com"))),
            ("limits", Member(Gen.Elements("{memoryMb: 64}", "{cpus: .nan}", "{cpus: .inf}", "{pids: 0}", "{tmpMb: -1}", "{cpus: 0.5, pids: 8}", "{}", "~"))),
            ("unknown", Member(Scalar)),
        ],
        member => member.Item2.Select(value => value is null ? "" : $"    {member.Item1}: {value}\n"))
        .Select(lines => "  -\n" + string.Concat(lines));

    private static readonly Gen<byte[]> RegistryFile = Mutated(Gen.Frequency(
        (8, Gen.Choose(0, 4).SelectMany(n => Gen.Frequency((8, Entry), (1, Gen.Elements("  - ~\n", "  - 5\n", "  - [a]\n"))).ListOf(n))
            .Select(entries => "agents:\n" + string.Concat(entries))),
        (1, Gen.Elements("", "agents: ~\n", "agents: 5\n", "agents: {}\n", "other: 1\n")),
        (1, Value.Select(v => $"agents: {v}\n"))));

    [Fact]
    public void ConfigFile_AnyContent_LoadsOrFailsWithAConfigError()
    {
        var file = _dir.Combine("config.yaml");
        var property = Prop.ForAll(ConfigFile.Select(b => new Sample(b)).ToArbitrary(), sample =>
        {
            File.WriteAllBytes(file, sample.Bytes);
            try
            {
                WorkerConfig.Load(ConfigValues.Resolve(new Dictionary<Setting, string?> { [Settings.ConfigFile] = file }, _ => null));
            }
            catch (ConfigException e)
            {
                Assert.StartsWith("invalid setting --", e.Message, StringComparison.Ordinal);
            }
        });

        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases), property);
    }

    [Fact]
    public void RegistryFile_AnyContent_LoadsUsableAgentsOrFailsNamingTheEntry()
    {
        var file = _dir.Combine("agents.yaml");
        var property = Prop.ForAll(RegistryFile.Select(b => new Sample(b)).ToArbitrary(), sample =>
        {
            File.WriteAllBytes(file, sample.Bytes);
            AgentRegistry registry;
            try
            {
                registry = AgentRegistry.Load(file, ["/bin/true"]);
            }
            catch (AgentRegistryException e)
            {
                Assert.StartsWith($"agents file {file}", e.Message, StringComparison.Ordinal);
                return;
            }
            foreach (var agent in registry.All.Where(a => !a.BuiltIn))
            {
                Assert.True(agent.Command.Count > 0 && agent.Command.All(a => !string.IsNullOrEmpty(a)), $"{agent.Id}: command");
                Assert.True(agent.Env.All(name => !string.IsNullOrEmpty(name)), $"{agent.Id}: env");
                Assert.True(agent.TimeoutSeconds is null or > 0, $"{agent.Id}: timeout");
                if (agent.Limits is { } limits)
                    Assert.True(limits.Cpus is null || (double.IsFinite(limits.Cpus.Value) && limits.Cpus > 0), $"{agent.Id}: cpus {limits.Cpus}");
            }
        });

        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases), property);
    }

    /// <summary>A file's bytes, shown as text in FsCheck's failure message.</summary>
    public sealed record Sample(byte[] Bytes)
    {
        public override string ToString() => Encoding.UTF8.GetString(Bytes);
    }

    public void Dispose() => _dir.Dispose();
}
