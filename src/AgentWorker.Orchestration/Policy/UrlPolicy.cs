using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Orchestration.Policy;

/// <summary>
/// An exception to the address rules (<c>--web-allow</c>): an address or CIDR block, optionally with a port,
/// e.g. <c>127.0.0.1:8080</c>, <c>[::1]:8080</c>, <c>10.20.0.0/16</c>.
/// </summary>
public sealed record AllowRule(IPAddress Network, int PrefixLength, int? Port)
{
    public static AllowRule Parse(string text)
    {
        var entry = text.Trim();
        int? port = null;
        if (entry.StartsWith('['))
        {
            var close = entry.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new FormatException($"'{text}': missing ']'");
            if (close + 1 < entry.Length)
                port = ParsePort(text, entry[(close + 1)..]);
            entry = entry[1..close];
        }
        else if (entry.Count(c => c == ':') == 1)
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            port = ParsePort(text, entry[colon..]);
            entry = entry[..colon];
        }
        var prefix = -1;
        if (entry.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0)
        {
            if (!int.TryParse(entry[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix))
                throw new FormatException($"'{text}': bad prefix length");
            entry = entry[..slash];
        }
        if (!IPAddress.TryParse(entry, out var address))
            throw new FormatException($"'{text}' is not an IP address, CIDR block or address:port");
        address = Unmapped(address);
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefix > bits)
            throw new FormatException($"'{text}': prefix longer than {bits} bits");
        return new AllowRule(address, prefix < 0 ? bits : prefix, port);
    }

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

    private static int ParsePort(string text, string suffix) =>
        suffix.StartsWith(':') && int.TryParse(suffix[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new FormatException($"'{text}': bad port");
}

/// <summary>Where an allowed URL may be fetched: the checked address the connection must go to (so a second lookup cannot change it).</summary>
internal sealed record UrlDecision(Uri Url, string Host, int Port, IPAddress Address);

/// <summary>
/// URL rules of the web tools, decided before any connection: http and https only, no credentials in the URL,
/// and every address the host resolves to must be public unless an <see cref="AllowRule"/> admits it
/// (loopback, private, link-local, carrier-grade NAT, multicast, reserved and unspecified ranges are refused,
/// also when wrapped in IPv4-mapped, NAT64 or 6to4 IPv6 addresses). Redirect targets go through the same check.
/// </summary>
internal sealed class UrlPolicy(IReadOnlyList<AllowRule> allow, Func<string, CancellationToken, Task<IPAddress[]>> resolve)
{
    public static Task<IPAddress[]> ResolveWithDns(string host, CancellationToken cancellationToken) =>
        Dns.GetHostAddressesAsync(host, cancellationToken);

    public async Task<UrlDecision> CheckAsync(string url, CancellationToken cancellationToken)
    {
        if (url.Any(c => char.IsControl(c) || c == ' '))
            throw TaskRefusedException.Policy("url: contains control characters or spaces");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
            throw TaskRefusedException.Argument($"url: '{url}' is not an absolute URL");
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            throw TaskRefusedException.Policy($"url: scheme '{uri.Scheme}' is not allowed (only http and https): {url}");
        if (uri.UserInfo.Length > 0)
            throw TaskRefusedException.Policy("url: credentials in URLs are not allowed");
        var literal = uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 ? IPAddress.Parse(uri.DnsSafeHost) : null;
        var host = literal?.ToString() ?? uri.IdnHost;
        if (host.Length == 0)
            throw TaskRefusedException.Argument($"url: '{url}' has no host");

        IPAddress[] addresses;
        if (literal is not null)
        {
            addresses = [literal];
        }
        else
        {
            try
            {
                addresses = await resolve(host, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw TaskRefusedException.Argument($"url: cannot resolve '{host}': {e.Message}");
            }
            if (addresses.Length == 0)
                throw TaskRefusedException.Argument($"url: '{host}' has no addresses");
        }
        // Every address counts, not just the first: the tool must not be steerable to the one that is refused.
        foreach (var address in addresses)
        {
            if (Classify(address) is { } kind && !allow.Any(rule => rule.Matches(address, uri.Port)))
            {
                var via = literal is null ? $"'{host}' resolves to {address}, " : $"{address} is ";
                throw TaskRefusedException.Policy($"url: {url} refused: {via}a {kind} address (allow it explicitly with --web-allow)");
            }
        }
        return new UrlDecision(uri, host, uri.Port, addresses[0]);
    }

    /// <summary>Why an address is not public (e.g. "loopback"), or null for a public one.</summary>
    public static string? Classify(IPAddress address)
    {
        address = AllowRule.Unmapped(address);
        var b = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return b switch
            {
                [0, ..] => "unspecified",
                [10, ..] => "private",
                [127, ..] => "loopback",
                [169, 254, ..] => "link-local",
                [172, >= 16 and <= 31, ..] => "private",
                [192, 168, ..] => "private",
                [100, >= 64 and <= 127, ..] => "carrier-grade NAT",
                [192, 0, 0, _] or [192, 0, 2, _] or [198, 51, 100, _] or [203, 0, 113, _] or [198, 18 or 19, ..] => "reserved",
                [>= 224 and <= 239, ..] => "multicast",
                [>= 240, ..] => "reserved",
                _ => null,
            };
        }
        if (address.Equals(IPAddress.IPv6None))
            return "unspecified";
        if (address.Equals(IPAddress.IPv6Loopback))
            return "loopback";
        if (address.IsIPv6LinkLocal)
            return "link-local";
        if (address.IsIPv6SiteLocal || (b[0] & 0xfe) == 0xfc)
            return "private";
        if (address.IsIPv6Multicast)
            return "multicast";
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that decides.
        if (b[..12].SequenceEqual(new byte[] { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 }))
            return Classify(new IPAddress(b[12..]));
        if (b[0] == 0x20 && b[1] == 0x02)
            return Classify(new IPAddress(b[2..6]));
        // The rest of ::/8 (IPv4-compatible and other reserved forms).
        if (b[0] == 0)
            return "reserved";
        return null;
    }
}
