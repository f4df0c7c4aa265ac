using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Core.Egress;

/// <summary>
/// The outcome of one egress check. When <see cref="Allowed"/>, <see cref="Address"/> is the checked address the
/// connection must go to (looking the name up again could answer differently). <see cref="Reason"/> is one line for
/// the agent and the job log.
/// </summary>
public sealed record EgressDecision(bool Allowed, string Host, int Port, IPAddress? Address, string Reason)
{
    /// <summary>Refused because the name could not be resolved, not because of a rule.</summary>
    public bool Unresolved { get; init; }
}

/// <summary>
/// The one egress policy: which host and port a connection may go to, decided before any connection. Used by the
/// agents' egress proxy and by the orchestrator's web tools.
/// </summary>
public sealed class EgressPolicy(IReadOnlyList<CidrRule> allowCidrs, IReadOnlyList<ResolvePin> pins, Func<string, CancellationToken, Task<IPAddress[]>>? resolve = null)
{
    private readonly Func<string, CancellationToken, Task<IPAddress[]>> _resolve = resolve ?? Dns.GetHostAddressesAsync;

    /// <summary>
    /// Decides a connection to <paramref name="host"/>:<paramref name="port"/>. <paramref name="allowHosts"/> null means any
    /// public host (network full). IP literals (in every form the C library accepts) are classified as they are; names
    /// <c>localhost</c> and <c>*.localhost</c> are refused; a name outside <paramref name="allowHosts"/> is refused
    /// without being looked up; pinned names (<c>EGRESS_RESOLVE</c>) are not looked up either. Every address a name
    /// resolves to must be public unless an allowed CIDR admits it on that port.
    /// </summary>
    public async Task<EgressDecision> DecideAsync(string host, int port, IReadOnlyList<HostPattern>? allowHosts, CancellationToken cancellationToken)
    {
        if (port is < 1 or > 65535)
            return Refuse(host, port, $"port {port} is not a TCP port");
        if (HostPattern.Normalize(host, out var name, out var literal) is { } problem)
            return Refuse(host, port, problem);
        if (literal is not null)
        {
            if (Refusal(literal, port) is { } kind)
                return Refuse(name, port, $"{literal} is a {kind} address");
            return allowHosts is null || allowHosts.Any(p => p.Matches(name, port))
                ? new EgressDecision(true, name, port, literal, "allowed")
                : Refuse(name, port, NotListed(name, port, allowHosts));
        }
        if (HostPattern.IsLocalhost(name))
            return Refuse(name, port, $"'{name}' names this machine");
        if (allowHosts is not null && !allowHosts.Any(p => p.Matches(name, port)))
            return Refuse(name, port, NotListed(name, port, allowHosts));

        IPAddress[] addresses = [.. pins.Where(pin => pin.Host == name && pin.Port == port).Select(pin => pin.Address)];
        if (addresses.Length == 0)
        {
            try
            {
                addresses = await _resolve(name, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                return Refuse(name, port, $"cannot resolve '{name}': {e.Message}") with { Unresolved = true };
            }
            if (addresses.Length == 0)
                return Refuse(name, port, $"'{name}' has no addresses") with { Unresolved = true };
        }
        // Every address counts, not just the first: a client must not be steerable to the one that is refused.
        foreach (var address in addresses)
        {
            if (Refusal(address, port) is { } kind)
                return Refuse(name, port, $"'{name}' resolves to {address}, a {kind} address");
        }
        return new EgressDecision(true, name, port, addresses[0], "allowed");
    }

    /// <summary>Why an address is not public (e.g. "loopback"), or null for a public one.</summary>
    public static string? Classify(IPAddress address)
    {
        address = CidrRule.Unmapped(address);
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
                [192, 0, 0, _] or [192, 0, 2, _] or [192, 88, 99, _] or [198, 51, 100, _] or [203, 0, 113, _] or [198, 18 or 19, ..] => "reserved",
                [>= 224 and <= 239, ..] => "multicast",
                // 240.0.0.0/4 and the broadcast address 255.255.255.255.
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
        // Local-use NAT64 (64:ff9b:1::/48) and Teredo (2001::/32) hide an IPv4 address where it cannot be read back safely;
        // 2001:db8::/32 is for documentation; the rest of ::/8 holds the IPv4-compatible and other reserved forms.
        if (b[..6].SequenceEqual(new byte[] { 0, 0x64, 0xff, 0x9b, 0, 1 }) || b[..4].SequenceEqual(new byte[] { 0x20, 0x01, 0, 0 })
            || b[..4].SequenceEqual(new byte[] { 0x20, 0x01, 0x0d, 0xb8 }) || b[0] == 0)
            return "reserved";
        return null;
    }

    /// <summary>Why a connection to <paramref name="address"/> on <paramref name="port"/> is refused, or null when it is public or an allowed CIDR admits it.</summary>
    private string? Refusal(IPAddress address, int port) =>
        Classify(address) is { } kind && !allowCidrs.Any(rule => rule.Matches(address, port)) ? kind : null;

    private static string NotListed(string host, int port, IReadOnlyList<HostPattern> allowHosts) =>
        allowHosts.Any(p => p.Matches(host, p.Port)) ? $"port {port} not allowed for {host}" : "not in the allow list";

    private static EgressDecision Refuse(string host, int port, string reason) => new(false, host, port, null, reason);
}
