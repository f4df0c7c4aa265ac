using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Core.Egress;

/// <summary>
/// One allow-list entry: <c>host</c>, or <c>*.domain</c> for the domain's subdomains (not the domain itself), with an
/// optional <c>:port</c> (default 443; plain HTTP needs an explicit <c>:80</c>). Names are kept lower-case, without a
/// trailing dot, internationalized ones as punycode; IP literals (<c>[v6]</c> with a port) are entries too.
/// </summary>
public sealed record HostPattern(string Host, bool Subdomains, int Port)
{
    public const int DefaultPort = 443;

    private const int MaxNameLength = 253;
    private const int MaxLabelLength = 63;

    /// <summary>Parses one entry; a bad one throws <see cref="FormatException"/> whose message names it.</summary>
    public static HostPattern Parse(string text)
    {
        var host = text;
        var port = DefaultPort;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new FormatException($"'{text}': missing ']'");
            if (close + 1 < text.Length)
                port = ParsePort(text, text[(close + 1)..]);
            host = text[..(close + 1)];
        }
        else if (text.Count(c => c == ':') == 1)
        {
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            port = ParsePort(text, text[colon..]);
            host = text[..colon];
        }
        var subdomains = host.StartsWith("*.", StringComparison.Ordinal);
        if (Normalize(subdomains ? host[2..] : host, out var canonical, out var literal) is { } problem)
            throw new FormatException($"'{text}': {problem}");
        if (subdomains && literal is not null)
            throw new FormatException($"'{text}': '*.' goes before a domain name, not an address");
        return new HostPattern(canonical, subdomains, port);
    }

    /// <summary>Whether the entry admits <paramref name="host"/> (in canonical form, as <see cref="EgressPolicy"/> passes it) on <paramref name="port"/>.</summary>
    public bool Matches(string host, int port) =>
        port == Port && (Subdomains ? host.EndsWith("." + Host, StringComparison.Ordinal) : host == Host);

    public override string ToString()
    {
        var host = Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host;
        return $"{(Subdomains ? "*." : "")}{host}:{Port}";
    }

    /// <summary>Whether everything <paramref name="other"/> admits, this entry admits too.</summary>
    internal bool Covers(HostPattern other) =>
        other.Subdomains
            ? Subdomains && other.Port == Port && (other.Host == Host || other.Host.EndsWith("." + Host, StringComparison.Ordinal))
            : Matches(other.Host, other.Port);

    internal static bool IsLocalhost(string host) => host == "localhost" || host.EndsWith(".localhost", StringComparison.Ordinal);

    /// <summary>
    /// The canonical form of a host as a client wrote it, or why it is not a host. IP literals are read as the C library
    /// reads them (<c>2130706433</c>, <c>0177.0.0.1</c>, <c>0x7f.1</c> are all 127.0.0.1), so the check sees the
    /// address a client would connect to; IPv6 may be bracketed. Names are lower-cased, lose one trailing dot and
    /// become punycode.
    /// </summary>
    internal static string? Normalize(string text, out string host, out IPAddress? address)
    {
        host = "";
        address = null;
        if (text.Length == 0)
            return "empty host";
        if (text.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
            return "host contains spaces or control characters";
        if (text.Contains('%', StringComparison.Ordinal))
            return $"'{text}' is not a host name or address";
        var bracketed = text.StartsWith('[') && text.EndsWith(']');
        var bare = bracketed ? text[1..^1] : text;
        if (bracketed || bare.Contains(':', StringComparison.Ordinal))
        {
            if (!IPAddress.TryParse(bare, out address) || address.AddressFamily != AddressFamily.InterNetworkV6)
                return $"'{text}' is not an IPv6 address";
            host = address.ToString();
            return null;
        }
        var name = bare.EndsWith('.') ? bare[..^1] : bare;
        if (name.Length > MaxNameLength)
            return $"host name longer than {MaxNameLength} characters";
        if (IPAddress.TryParse(name, out address))
        {
            host = address.ToString();
            return null;
        }
        try
        {
            name = new IdnMapping().GetAscii(name).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return $"'{text}' is not a valid host name";
        }
        if (name.Length > MaxNameLength)
            return $"host name longer than {MaxNameLength} characters";
        var labels = name.Split('.');
        if (labels.Any(label => label.Length is 0 or > MaxLabelLength || label[0] == '-' || label[^1] == '-'
            || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
            return $"'{text}' is not a valid host name";
        // A numeric last label makes the C library read the whole host as an address; one it cannot read is no name either.
        if (labels[^1].All(char.IsAsciiDigit) || labels[^1].StartsWith("0x", StringComparison.Ordinal) && labels[^1][2..].All(char.IsAsciiHexDigit))
            return $"'{text}' is neither a valid IPv4 address nor a host name";
        host = name;
        return null;
    }

    internal static int ParsePort(string text, string suffix) =>
        suffix.StartsWith(':') && int.TryParse(suffix[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new FormatException($"'{text}': bad port");
}
