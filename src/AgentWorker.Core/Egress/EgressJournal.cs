using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Pipeline;

namespace AgentWorker.Core.Egress;

/// <summary>
/// One connection the agent asked the egress proxy for: the job event of kind <c>egress</c> (its message is this, as JSON).
/// <c>Decision</c> is <c>allowed</c> or <c>refused</c>; <c>Protocol</c> <c>connect</c> (HTTP CONNECT), <c>http</c> (an
/// absolute-URI request) or <c>socks5</c>; <c>Address</c> the one the policy checked (none for a refusal before resolving).
/// </summary>
public sealed record EgressEvent(string Host, int Port, string? Address, string Decision, string Reason, string Protocol, long BytesUp, long BytesDown, long DurationMs)
{
    public const string Allowed = "allowed";
    public const string Refused = "refused";
}

/// <summary>What one run exchanged with one host and port (a job result's and a run receipt's <c>egress</c> list).</summary>
public sealed record EgressHostSummary(string Host, int Port, int Connections, int Refused, long BytesUp, long BytesDown);

/// <summary>
/// A run's egress decisions: each becomes a job event as it happens (an allowed connection when it closes, with its bytes),
/// is counted for <c>/metrics</c>, and adds to the per-host summary the result keeps. An agent can ask for connections
/// as fast as the loopback answers, so both are bounded: the first <see cref="MaxEvents"/> decisions are logged one by
/// one (then a line says how many more there were), and the summary keeps <see cref="MaxHosts"/> hosts, the rest in one row.
/// </summary>
public sealed class EgressJournal(Func<NewJobEvent, ValueTask> report, Action<string> count)
{
    public const int MaxEvents = 1000;
    public const int MaxHosts = 100;

    /// <summary>The summary row of the hosts past <see cref="MaxHosts"/>.</summary>
    public const string OtherHosts = "(other hosts)";

    private readonly Dictionary<(string Host, int Port), EgressHostSummary> _hosts = [];
    private int _events;

    public async ValueTask RecordAsync(EgressEvent egress)
    {
        bool logged;
        lock (_hosts)
        {
            var key = (egress.Host, egress.Port);
            if (!_hosts.ContainsKey(key) && _hosts.Count >= MaxHosts)
                key = (OtherHosts, 0);
            var seen = _hosts.GetValueOrDefault(key) ?? new EgressHostSummary(key.Item1, key.Item2, 0, 0, 0, 0);
            _hosts[key] = egress.Decision == EgressEvent.Allowed
                ? seen with { Connections = seen.Connections + 1, BytesUp = seen.BytesUp + egress.BytesUp, BytesDown = seen.BytesDown + egress.BytesDown }
                : seen with { Refused = seen.Refused + 1 };
            logged = ++_events <= MaxEvents;
        }
        count(egress.Decision);
        if (logged)
            await report(new NewJobEvent(JobEventKind.Egress, JsonSerializer.Serialize(egress, ResultJson.Options))).ConfigureAwait(false);
    }

    /// <summary>Per host and port, in the order first seen; after the run, with a log line for the decisions not logged one by one.</summary>
    public async ValueTask<IReadOnlyList<EgressHostSummary>> CloseAsync()
    {
        int events;
        EgressHostSummary[] hosts;
        lock (_hosts)
            (events, hosts) = (_events, [.. _hosts.Values]);
        if (events > MaxEvents)
            await report(new NewJobEvent(JobEventKind.Log, $"[agent-worker: {events - MaxEvents} more egress decision(s) not logged one by one (at most {MaxEvents} a run); the result's egress summary counts them]")).ConfigureAwait(false);
        return hosts;
    }
}
