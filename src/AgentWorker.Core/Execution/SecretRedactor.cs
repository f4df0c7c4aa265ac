namespace AgentWorker.Core.Execution;

/// <summary>Replaces known secret values (API keys, tokens) with <c>***</c> in text about to be stored or logged.</summary>
public sealed class SecretRedactor(IEnumerable<string?> secrets)
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
        return text;
    }
}
