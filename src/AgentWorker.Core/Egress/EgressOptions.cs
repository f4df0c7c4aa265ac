namespace AgentWorker.Core.Egress;

/// <summary>The operator's egress settings, shared by every agent run.</summary>
public sealed record EgressOptions
{
    /// <summary>Non-public addresses (and ports) agents may still reach, e.g. a private model gateway (<c>EGRESS_ALLOW_CIDRS</c>).</summary>
    public IReadOnlyList<CidrRule> AllowCidrs { get; init; } = [];

    /// <summary>Names pinned to addresses instead of DNS (<c>EGRESS_RESOLVE</c>).</summary>
    public IReadOnlyList<ResolvePin> Resolve { get; init; } = [];

    /// <summary>A job's <c>allowHosts</c> may name hosts its agent's list does not (<c>EGRESS_JOBS_MAY_ADD_HOSTS</c>).</summary>
    public bool JobsMayAddHosts { get; init; }

    /// <summary>Connections open at once, per run (<c>EGRESS_MAX_CONNECTIONS</c>).</summary>
    public int MaxConnections { get; init; } = 64;

    /// <summary>Bytes up and down together, per run (<c>EGRESS_MAX_MB</c>).</summary>
    public long MaxBytes { get; init; } = 2L << 30;

    /// <summary>A connection with no traffic this long is closed (<c>EGRESS_IDLE_TIMEOUT_SECONDS</c>).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
