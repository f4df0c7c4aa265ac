using System.Net;

namespace AgentWorker.Core.Egress;

/// <summary>
/// A name pinned to an address for one port (<c>EGRESS_RESOLVE</c> entry <c>host:port:address</c>, like curl's
/// <c>--resolve</c>; the address may be bracketed IPv6): the egress policy uses it instead of DNS.
/// </summary>
public sealed record ResolvePin(string Host, int Port, IPAddress Address)
{
    /// <summary>Parses one entry; a bad one throws <see cref="FormatException"/> whose message names it.</summary>
    public static ResolvePin Parse(string text)
    {
        var parts = text.Trim().Split(':', 3);
        if (parts.Length != 3)
            throw new FormatException($"'{text}' is not host:port:address");
        if (HostPattern.Normalize(parts[0], out var host, out var literal) is { } problem)
            throw new FormatException($"'{text}': {problem}");
        if (literal is not null)
            throw new FormatException($"'{text}': pin a host name, not an address");
        var port = HostPattern.ParsePort(text, ":" + parts[1]);
        var address = parts[2].StartsWith('[') && parts[2].EndsWith(']') ? parts[2][1..^1] : parts[2];
        if (address.Contains('%', StringComparison.Ordinal) || !IPAddress.TryParse(address, out var parsed))
            throw new FormatException($"'{text}': '{parts[2]}' is not an IP address");
        return new ResolvePin(host, port, parsed);
    }

    /// <summary>As the setting spells it: <c>host:port:address</c>, an IPv6 address in brackets.</summary>
    public override string ToString() => Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"{Host}:{Port}:[{Address}]" : $"{Host}:{Port}:{Address}";
}
