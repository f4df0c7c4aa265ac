using System.Text.RegularExpressions;

namespace AgentWorker.Core.Execution;

/// <summary>
/// Masks secrets in text about to be stored, logged or shown: the worker's own known values (API keys, tokens) and the
/// user-info of any URL (<c>https://user:pass@host</c> → <c>https://***@host</c>), such as an MCP URL with a password.
/// </summary>
public sealed partial class SecretRedactor(IEnumerable<string?> secrets)
{
    public const string Mask = "***";

    // Longest first, so a secret that contains another is masked whole.
    private readonly string[] _secrets = [.. secrets.OfType<string>().Where(s => s.Length >= 4).Distinct().OrderByDescending(s => s.Length)];

    public static SecretRedactor None { get; } = new([]);

    public string Redact(string text)
    {
        foreach (var secret in _secrets)
        {
            if (text.Contains(secret, StringComparison.Ordinal))
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }
        return MaskUrlCredentials(text);
    }

    /// <summary>
    /// <paramref name="text"/> with the user-info of every URL in it masked. An ssh login name without a password
    /// (<c>ssh://git@host/…</c>) is kept: it names the account, as in scp-style <c>git@host:path</c>, and is no secret.
    /// </summary>
    public static string MaskUrlCredentials(string text) =>
        text.Contains("://", StringComparison.Ordinal) && text.Contains('@', StringComparison.Ordinal)
            ? UrlUserInfo().Replace(text, match =>
                match.Groups["scheme"].Value.Equals("ssh", StringComparison.OrdinalIgnoreCase) && !match.Groups["userinfo"].Value.Contains(':', StringComparison.Ordinal)
                    ? match.Value
                    : $"{match.Groups["scheme"].Value}://{Mask}@")
            : text;

    // The authority ends at '/', '?' or '#' (greedy: a password may hold '@', the host cannot); quotes, spaces and angle brackets end the URL in free text and JSON.
    [GeneratedRegex("""(?<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?<userinfo>[^/?#\s"'<>\\]+)@""", RegexOptions.CultureInvariant)]
    private static partial Regex UrlUserInfo();
}
