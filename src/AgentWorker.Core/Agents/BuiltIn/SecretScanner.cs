using System.Collections.Frozen;
using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Finds credentials committed to the repository. Every reported value is redacted: the output of a
/// secret scanner is itself stored, logged and sent to webhooks.
/// </summary>
internal sealed partial class SecretScanner : IBuiltInAgent
{
    private const string Advice = "revoke it and load it from the environment or a secret store";

    // Formats where credentials are written without quotes ("password: hunter2"); in code an
    // unquoted right-hand side is an expression, not a literal.
    private static readonly FrozenSet<string> UnquotedConfigExtensions =
        FrozenSet.Create(StringComparer.Ordinal, ".yml", ".yaml", ".properties", ".ini", ".cfg", ".conf");

    // Provider formats come first: a value they claim is not reported again by the generic rules.
    private static readonly Pattern[] Patterns =
    [
        new("aws-access-key", "critical", "AWS access key id", AwsAccessKey(), NotPlaceholder),
        new("aws-secret-key", "critical", "AWS secret access key", AwsSecretKey(), NotPlaceholder),
        new("google-api-key", "critical", "Google API key", GoogleApiKey(), NotPlaceholder),
        new("github-token", "high", "GitHub token", GitHubToken(), NotPlaceholder),
        new("slack-token", "high", "Slack token", SlackToken(), NotPlaceholder),
        new("stripe-key", "high", "Stripe live key", StripeLiveKey(), NotPlaceholder),
        new("jwt", "high", "JSON Web Token", Jwt(), NotPlaceholder),
        new("connection-string", "high", "Password in a connection URL", SecretText.UrlPassword(), RandomSecret),
        new("connection-string", "high", "Password in a connection string", KeyValuePassword(),
            (m, line) => RandomSecret(m, line) && ConnectionStringKeys().IsMatch(line)),
        new("generic-secret", "medium", "Hard-coded credential", QuotedAssignment(), CredentialAssignment),
        new("generic-secret", "medium", "Hard-coded credential", UnquotedAssignment(), CredentialAssignment,
            file => UnquotedConfigExtensions.Contains(file.Extension)),
    ];

    public string Id => "secret_scanner";

    public string Description => "Finds committed credentials: cloud and API keys, private keys, tokens, passwords and .env files.";

    public void Run(string workspace, string? prompt, AgentOutput output, CancellationToken cancellationToken)
    {
        output.Progress(0, $"{Id}: scanning for committed credentials");
        var report = new AuditReport(Id);
        var files = RepositoryFiles.List(workspace, output, cancellationToken);
        foreach (var file in files.ReadTextFiles(cancellationToken))
        {
            ScanLines(file, report);
            if (IsEnvFile(file.Name))
                CheckEnvFile(file, report);
        }
        report.Publish(output, files.FilesRead);
    }

    private static void ScanLines(TextFile file, AuditReport report)
    {
        var patterns = Patterns.Where(p => p.AppliesTo?.Invoke(file) ?? true).ToList();
        var claimed = new List<(int Start, int End)>();
        for (var i = 0; i < file.Lines.Count; i++)
        {
            var line = file.Lines[i];
            if (PrivateKeyHeader().Match(line) is { Success: true } header && HasKeyBody(file, i, header))
            {
                var kind = header.Groups["kind"].Value.Trim();
                report.Add("critical", "private-key", file.Path, i + 1,
                    $"{(kind.Length == 0 ? "Private key" : $"{kind} private key")} is committed; rotate the key pair and remove it from the repository history");
            }
            claimed.Clear();
            foreach (var pattern in patterns)
            {
                foreach (Match match in pattern.Regex.Matches(line))
                {
                    var secret = match.Groups["secret"];
                    var overlaps = claimed.Any(c => secret.Index < c.End && c.Start < secret.Index + secret.Length);
                    if (overlaps || !pattern.Accept(match, line))
                        continue;
                    claimed.Add((secret.Index, secret.Index + secret.Length));
                    report.Add(pattern.Severity, pattern.Rule, file.Path, i + 1,
                        $"{pattern.Label} {SecretText.Redact(secret.Value)} is committed; {Advice}");
                }
            }
        }
    }

    // A header alone is what documentation and test fixtures show; a key has base64 material after it
    // (on the next lines, after PEM headers such as Proc-Type, or after "\n" escapes in a JSON string).
    private static bool HasKeyBody(TextFile file, int lineIndex, Match header)
    {
        var following = file.Lines.Skip(lineIndex + 1).Take(4).Prepend(file.Lines[lineIndex][(header.Index + header.Length)..]);
        return following.Any(KeyMaterial().IsMatch);
    }

    private static void CheckEnvFile(TextFile file, AuditReport report)
    {
        var assigned = new List<(int Line, string Name)>();
        for (var i = 0; i < file.Lines.Count; i++)
        {
            if (EnvAssignment().Match(file.Lines[i]) is not { Success: true } match)
                continue;
            var value = EnvValue(match.Groups["value"].Value);
            if (value.Length > 0 && !SecretText.IsPlaceholder(value))
                assigned.Add((i + 1, match.Groups["name"].Value));
        }
        if (assigned.Count == 0)
            return;
        report.Add("medium", "env-file", file.Path, assigned[0].Line,
            $".env file is committed with {assigned.Count} value(s) ({AuditReport.Enumerate(assigned.Select(a => a.Name))}); "
            + "remove it from git, ignore it, and commit a template without values instead");
    }

    private static string EnvValue(string raw)
    {
        raw = raw.Trim();
        if (raw.Length > 0 && raw[0] is '"' or '\'')
        {
            var end = raw.IndexOf(raw[0], 1);
            return end < 0 ? raw[1..] : raw[1..end];
        }
        var comment = raw.IndexOf(" #", StringComparison.Ordinal);
        return (comment < 0 ? raw : raw[..comment]).Trim();
    }

    private static bool IsEnvFile(string name) =>
        (name == ".env" || name.StartsWith(".env.", StringComparison.Ordinal) || name.EndsWith(".env", StringComparison.Ordinal))
        && !EnvTemplateName().IsMatch(name);

    private static bool NotPlaceholder(Match match, string line) => !SecretText.IsPlaceholder(match.Groups["secret"].Value);

    private static bool RandomSecret(Match match, string line) => SecretText.LooksRandom(match.Groups["secret"].Value);

    private static bool CredentialAssignment(Match match, string line) =>
        SecretText.IsCredentialName(match.Groups["key"].Value) && RandomSecret(match, line);

    private sealed record Pattern(
        string Rule,
        string Severity,
        string Label,
        Regex Regex,
        Func<Match, string, bool> Accept,
        Func<TextFile, bool>? AppliesTo = null);

    [GeneratedRegex(@"(?<![A-Z0-9])(?<secret>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])", RegexOptions.CultureInvariant)]
    private static partial Regex AwsAccessKey();

    [GeneratedRegex(@"(?<![A-Za-z0-9])(?i:aws)[A-Za-z0-9_.-]{0,30}?(?i:secret)[A-Za-z0-9_.-]{0,20}[""']?\s*(?::=|=>|=|:)\s*[""']?(?<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])", RegexOptions.CultureInvariant)]
    private static partial Regex AwsSecretKey();

    [GeneratedRegex(@"(?<![A-Za-z0-9_-])(?<secret>AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])", RegexOptions.CultureInvariant)]
    private static partial Regex GoogleApiKey();

    [GeneratedRegex(@"(?<![A-Za-z0-9_])(?<secret>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])", RegexOptions.CultureInvariant)]
    private static partial Regex GitHubToken();

    [GeneratedRegex(@"(?<![A-Za-z0-9-])(?<secret>xox[abprs]-[A-Za-z0-9-]{10,250})(?![A-Za-z0-9-])", RegexOptions.CultureInvariant)]
    private static partial Regex SlackToken();

    [GeneratedRegex(@"(?<![A-Za-z0-9_])(?<secret>[rs]k_live_[A-Za-z0-9]{16,247})(?![A-Za-z0-9_])", RegexOptions.CultureInvariant)]
    private static partial Regex StripeLiveKey();

    // Header and payload of a JWT are base64url JSON objects, so both start with "eyJ" ('{"').
    [GeneratedRegex(@"(?<![A-Za-z0-9_-])(?<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})(?![A-Za-z0-9_-])", RegexOptions.CultureInvariant)]
    private static partial Regex Jwt();

    [GeneratedRegex(@"(?<![A-Za-z0-9_])(?:password|pwd)\s*=\s*(?<secret>[^;'""\s]{1,256})", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KeyValuePassword();

    [GeneratedRegex(@"(?:server|data source|host|address)\s*=", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ConnectionStringKeys();

    [GeneratedRegex(@"(?<![A-Za-z0-9_.$-])(?<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})[""']?\]?\s*(?::=|=>|===?|=|:)\s*(?<q>[""'`])(?<secret>[^""'`\r\n]{1,512})\k<q>", RegexOptions.CultureInvariant)]
    private static partial Regex QuotedAssignment();

    [GeneratedRegex(@"^\s*(?<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})\s*[:=]\s*(?<secret>[^\s'""#!&*|>{}\[\],][^\s#]{7,511})\s*(?:#.*)?$", RegexOptions.CultureInvariant)]
    private static partial Regex UnquotedAssignment();

    [GeneratedRegex(@"-----BEGIN (?<kind>(?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----", RegexOptions.CultureInvariant)]
    private static partial Regex PrivateKeyHeader();

    [GeneratedRegex(@"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}", RegexOptions.CultureInvariant)]
    private static partial Regex KeyMaterial();

    [GeneratedRegex(@"^\s*(?:export\s+)?(?<name>[A-Za-z_][A-Za-z0-9_.]*)\s*=(?<value>.*)$", RegexOptions.CultureInvariant)]
    private static partial Regex EnvAssignment();

    [GeneratedRegex(@"example|sample|template|dist|defaults|schema", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex EnvTemplateName();
}
