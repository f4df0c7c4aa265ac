using System.Security.Cryptography;
using System.Text;

namespace AgentWorker.Core.Tests.Agents;

/// <summary>
/// Credential-shaped test values, built at run time so this source file contains no literal that a
/// secret scanner (ours or a forge's push protection) would take for a real credential.
/// </summary>
internal static class FakeSecret
{
    public const string Base62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    public const string UpperAlphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    public const string Base64 = Base62 + "+/";

    /// <summary><paramref name="prefix"/> followed by <paramref name="length"/> deterministic, high-entropy characters.</summary>
    public static string Of(string prefix, int length, string alphabet = Base62)
    {
        var text = new StringBuilder(prefix);
        for (var block = 0; text.Length < prefix.Length + length; block++)
        {
            foreach (var b in SHA256.HashData(Encoding.UTF8.GetBytes($"{prefix}/{alphabet}/{block}")))
            {
                if (text.Length == prefix.Length + length)
                    break;
                text.Append(alphabet[b % alphabet.Length]);
            }
        }
        return text.ToString();
    }
}
