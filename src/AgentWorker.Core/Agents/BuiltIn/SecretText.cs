using System.Text.RegularExpressions;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// Judging and redacting values that may be credentials. Shared so that no agent ever prints a value
/// the secret scanner would have withheld.
/// </summary>
internal static partial class SecretText
{
    // Fragments that only occur in documentation values, templates and test stand-ins.
    private static readonly string[] PlaceholderFragments =
    [
        "changeme", "change_me", "change-me", "example", "placeholder", "dummy", "sample", "redacted",
        "your_", "your-", "yourpassword", "xxx", "***", "...", "todo", "fixme", "insert", "replace",
        "${", "{{", "%(", "%s", "$(", "<", ">",
    ];

    /// <summary>
    /// Enough to recognise the credential and find it again, never enough to use it: at most four
    /// characters, and fewer for short values, where four would give away a large part of the secret.
    /// </summary>
    public static string Redact(string secret)
    {
        var shown = secret.Length >= 16 ? 4 : secret.Length / 4;
        return $"{secret[..shown]}… ({secret.Length} chars)";
    }

    /// <summary>Shannon entropy in bits per character.</summary>
    public static double Entropy(string value)
    {
        if (value.Length == 0)
            return 0;
        var counts = new Dictionary<char, int>();
        foreach (var c in value)
            counts[c] = counts.GetValueOrDefault(c) + 1;
        var entropy = 0.0;
        foreach (var count in counts.Values)
        {
            var p = (double)count / value.Length;
            entropy -= p * Math.Log2(p);
        }
        return entropy;
    }

    public static bool IsPlaceholder(string value)
    {
        if (value.Length == 0 || value.StartsWith('$') || value.All(c => c == value[0]) || InterpolationHole().IsMatch(value))
            return true;
        foreach (var fragment in PlaceholderFragments)
        {
            if (value.Contains(fragment, StringComparison.OrdinalIgnoreCase))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Whether a value found in some other context (a constant, a setting) must not be printed: it is
    /// named like a credential, is a URL with a password, or looks generated.
    /// </summary>
    public static bool MayBeSecret(string name, string value) =>
        IsCredentialName(name) || UrlPassword().IsMatch(value) || (LooksRandom(value) && Entropy(value) >= 3.5);

    /// <summary>A name (variable, key, property) whose value is by convention a credential.</summary>
    public static bool IsCredentialName(string name) => CredentialName().IsMatch(name);

    /// <summary>
    /// A literal that looks like a generated or chosen secret rather than a word, an identifier,
    /// a path or a sentence — the filter that keeps "password = 'Password'" and
    /// "token = 'GITHUB_TOKEN'" from being reported.
    /// </summary>
    public static bool LooksRandom(string value) =>
        value.Length >= 8
        && !value.Any(char.IsWhiteSpace)
        && !IsPlaceholder(value)
        && !NameOrNumber().IsMatch(value)
        && !value.StartsWith('/') && !value.StartsWith("./", StringComparison.Ordinal)
        && !value.Contains("://", StringComparison.Ordinal)
        && Entropy(value) >= 3.0;

    /// <summary>"scheme://user:password@host"; the password is the "secret" group.</summary>
    [GeneratedRegex(@"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@'""`]{1,128}:(?<secret>[^\s@/'""`]{1,256})@[A-Za-z0-9.-]{1,253}", RegexOptions.CultureInvariant)]
    public static partial Regex UrlPassword();

    // "{password}", "{config.Token}": filled in by string interpolation or a format call.
    [GeneratedRegex(@"\{[A-Za-z_][\w.]*\}", RegexOptions.CultureInvariant)]
    private static partial Regex InterpolationHole();

    // The credential word must end the name ("db_password", "apiKey", "SECRET_KEY_BASE"), so that
    // "tokenizer" or "password_hint" are not mistaken for credentials.
    [GeneratedRegex(@"(?:password|passwd|passphrase|pwd|secret|token|api[_.-]?key|(?:secret|access|private|auth|signing|encryption|master)[_.-]?key|credentials?)(?:[_.-]?(?:base|value))?$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CredentialName();

    // Letters and separators only — camelCase, snake_case, kebab-case, dotted names, type names — are
    // names of things ("nextPageToken", "_RSAPrivateKey"); digits only are ids and sequence numbers.
    // Generated secrets almost always mix both; chosen passwords without digits rarely pass the entropy bar.
    [GeneratedRegex(@"^(?:[A-Za-z_.-]+|[0-9]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex NameOrNumber();
}
