using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Core.Egress;

/// <summary>
/// An exception to the address rules (<c>EGRESS_ALLOW_CIDRS</c>, <c>--web-allow</c>): an address or CIDR block,
/// optionally with a port, e.g. <c>127.0.0.1:8080</c>, <c>[::1]:8080</c>, <c>10.20.0.0/16</c>.
/// </summary>
public sealed record CidrRule(IPAddress Network, int PrefixLength, int? Port)
{
    /// <summary>Parses one entry; a bad one throws <see cref="FormatException"/> whose message names it.</summary>
    public static CidrRule Parse(string text)
    {
        var entry = text.Trim();
        int? port = null;
        if (entry.StartsWith('['))
        {
            var close = entry.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new FormatException($"'{text}': missing ']'");
            if (close + 1 < entry.Length)
                port = HostPattern.ParsePort(text, entry[(close + 1)..]);
            entry = entry[1..close];
        }
        else if (entry.Count(c => c == ':') == 1)
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            port = HostPattern.ParsePort(text, entry[colon..]);
            entry = entry[..colon];
        }
        var prefix = -1;
        if (entry.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0)
        {
            if (!int.TryParse(entry[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix))
                throw new FormatException($"'{text}': bad prefix length");
            entry = entry[..slash];
        }
        if (entry.Contains('%', StringComparison.Ordinal) || !IPAddress.TryParse(entry, out var address))
            throw new FormatException($"'{text}' is not an IP address, CIDR block or address:port");
        address = Unmapped(address);
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefix > bits)
            throw new FormatException($"'{text}': prefix longer than {bits} bits");
        return new CidrRule(address, prefix < 0 ? bits : prefix, port);
    }

    /// <summary>Whether the rule admits a connection to <paramref name="address"/> on <paramref name="port"/> (IPv4-mapped addresses count as IPv4).</summary>
    public bool Matches(IPAddress address, int port)
    {
        var candidate = Unmapped(address);
        if (candidate.AddressFamily != Network.AddressFamily || (Port is { } p && p != port))
            return false;
        var a = candidate.GetAddressBytes();
        var n = Network.GetAddressBytes();
        for (var bit = 0; bit < PrefixLength; bit++)
        {
            var mask = 0x80 >> (bit % 8);
            if ((a[bit / 8] & mask) != (n[bit / 8] & mask))
                return false;
        }
        return true;
    }

    public override string ToString()
    {
        var bits = Network.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var net = PrefixLength == bits ? Network.ToString() : $"{Network}/{PrefixLength}";
        return Port is { } p ? (Network.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{net}]:{p}" : $"{net}:{p}") : net;
    }

    internal static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
