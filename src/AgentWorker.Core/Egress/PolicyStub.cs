// TEMPORARY: the contract's policy types until branch `policy` merges; deleted in that merge.
using System.Net;

namespace AgentWorker.Core.Egress;

public sealed record HostPattern(string Host, bool Subdomains, int Port)
{
    public static HostPattern Parse(string text) => text.Split(':') is [var h, var p] ? new(h, false, int.Parse(p, System.Globalization.CultureInfo.InvariantCulture)) : new(text, false, 443);
    public bool Matches(string host, int port) => host == Host && port == Port;
}

public sealed record CidrRule(IPAddress Network, int PrefixLength, int? Port);

public sealed record ResolvePin(string Host, int Port, IPAddress Address);

public sealed record EgressDecision(bool Allowed, string Host, int Port, IPAddress? Address, string Reason);

public sealed class EgressPolicy(IReadOnlyList<CidrRule> allowCidrs, IReadOnlyList<ResolvePin> pins, Func<string, CancellationToken, Task<IPAddress[]>>? resolve = null)
{
    public Task<EgressDecision> DecideAsync(string host, int port, IReadOnlyList<HostPattern>? allowHosts, CancellationToken cancellationToken)
    {
        _ = (allowCidrs, resolve, cancellationToken);
        var pin = pins.FirstOrDefault(p => p.Host == host && p.Port == port);
        return Task.FromResult(pin is not null && (allowHosts is null || allowHosts.Any(a => a.Matches(host, port)))
            ? new EgressDecision(true, host, port, pin.Address, "allowed")
            : new EgressDecision(false, host, port, null, "not in the allow list"));
    }
}

public sealed record EgressOptions
{
    public IReadOnlyList<CidrRule> AllowCidrs { get; init; } = [];
    public IReadOnlyList<ResolvePin> Resolve { get; init; } = [];
    public bool JobsMayAddHosts { get; init; }
    public int MaxConnections { get; init; } = 64;
    public long MaxBytes { get; init; } = 2L << 30;
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

public static class AgentDefinitionStub
{
    public static IReadOnlyList<HostPattern>? AllowHostsFor(this AgentWorker.Core.Agents.AgentDefinition agent, AgentWorker.Core.Jobs.JobSpec job) => null;
}
