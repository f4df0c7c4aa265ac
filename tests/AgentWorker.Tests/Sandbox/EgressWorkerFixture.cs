using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// A hostile agent for the egress fixtures, registered once per network mode it runs in: as <c>{Id}-allowlist</c>
/// (<c>network: allowlist</c> with <paramref name="AllowHosts"/>) and as <c>{Id}-full</c> (<c>network: full</c>).
/// <paramref name="Script"/> runs as <c>bash -c Script agent {prompt}</c>.
/// </summary>
public sealed record EgressAgent(string Id, string Script, IReadOnlyList<string> AllowHosts);

/// <summary>
/// A <see cref="SandboxWorkerFixture"/> whose agents reach the network only through the worker's egress proxy: it starts
/// <see cref="Vendor"/>, an HTTPS server on a loopback address of its own reached as <c>vendor.test:{port}</c>, pins the
/// names to it with EGRESS_RESOLVE, admits that one address and port with EGRESS_ALLOW_CIDRS, and writes a registry
/// with <c>network</c> and <c>allowHosts</c> per agent. The test CA is <c>ca.pem</c> at the root of the job's repository.
/// </summary>
public abstract class EgressWorkerFixture : SandboxWorkerFixture
{
    public const string VendorName = "vendor.test";

    private readonly TestCertificateAuthority _authority = new();
    private TlsTestServer? _vendor;

    internal TlsTestServer Vendor => _vendor ?? throw new InvalidOperationException("fixture not initialized");

    /// <summary><c>vendor.test:{port}</c>: the allow-list entry and the URL authority of the one allowed host.</summary>
    public string VendorHost => $"{VendorName}:{Vendor.Port}";

    /// <summary>The names the server's certificate holds and EGRESS_RESOLVE pins to its address and port.</summary>
    protected virtual IReadOnlyList<string> VendorNames => [VendorName];

    /// <summary>Further EGRESS_RESOLVE entries (<c>host:port:address</c>), e.g. names pinned to loopback canaries.</summary>
    protected virtual IEnumerable<string> ExtraPins => [];

    /// <summary>The agents, known only once the servers run (their scripts and allow-lists name ports).</summary>
    protected abstract IEnumerable<EgressAgent> EgressAgents { get; }

    /// <summary>The base class's registry is not used: this one needs <c>network</c> and <c>allowHosts</c> per entry.</summary>
    protected sealed override IEnumerable<HostileAgent> Agents => [];

    private string Registry => Dir.Combine("egress-agents.yaml");

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["AGENTS_FILE"] = Registry,
        ["EGRESS_RESOLVE"] = string.Join(',', VendorNames.Select(name => $"{name}:{Vendor.Port}:{Vendor.Address}").Concat(ExtraPins)),
        ["EGRESS_ALLOW_CIDRS"] = Vendor.EndPoint,
    };

    protected override IReadOnlyDictionary<string, string> RepositoryFiles => new Dictionary<string, string>
    {
        ["README.md"] = "egress target\n",
        ["ca.pem"] = _authority.Pem,
    }.Concat(EgressRepositoryFiles).ToDictionary();

    protected virtual IReadOnlyDictionary<string, string> EgressRepositoryFiles => new Dictionary<string, string>();

    protected sealed override async Task PrepareAsync()
    {
        _vendor = await TlsTestServer.StartAsync(_authority, VendorNames, body: $"vendor-{Nonce}");
        await StartServersAsync();
        WriteRegistry();
    }

    /// <summary>Starts the test's other servers (canaries), after <see cref="Vendor"/> and before the worker.</summary>
    protected virtual Task StartServersAsync() => Task.CompletedTask;

    /// <summary>Stops the test's other servers.</summary>
    protected virtual ValueTask StopServersAsync() => ValueTask.CompletedTask;

    protected sealed override async ValueTask ReleaseAsync()
    {
        await StopServersAsync();
        if (_vendor is not null)
            await _vendor.DisposeAsync();
        _authority.Dispose();
    }

    /// <summary>JSON is YAML; serializing avoids quoting shell scripts by hand.</summary>
    private void WriteRegistry()
    {
        var agents = new JsonArray();
        foreach (var agent in EgressAgents)
        {
            foreach (var network in new[] { "allowlist", "full" })
            {
                var entry = new JsonObject
                {
                    ["id"] = $"{agent.Id}-{network}",
                    ["command"] = new JsonArray("bash", "-c", agent.Script, "agent", "{prompt}"),
                    ["network"] = network,
                };
                if (network == "allowlist")
                    entry["allowHosts"] = new JsonArray([.. agent.AllowHosts.Select(host => JsonValue.Create(host))]);
                agents.Add(entry);
            }
        }
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Registry, new JsonObject { ["agents"] = agents }.ToJsonString(options));
    }

    /// <summary>Runs <paramref name="agent"/>'s entry for <paramref name="network"/> (allowlist or full) in that mode.</summary>
    public Task<AgentRun> RunEgressAsync(string agent, string network, string prompt = "") => RunAsync($"{agent}-{network}", prompt, network);
}

/// <summary>One <c>egress</c> job event: the proxy's decision on one connection (its message is this as JSON).</summary>
public sealed record EgressEvent(string Host, int Port, string? Address, string Decision, string Reason, string Protocol, long BytesUp, long BytesDown)
{
    public bool Refused => Decision == "refused";
}

/// <summary>One host's line of a job result's <c>egress</c> summary.</summary>
public sealed record EgressSummary(string Host, int Port, int Connections, int Refused, long BytesUp, long BytesDown);

public static class EgressRuns
{
    /// <summary>The run's <c>egress</c> events, as <c>GET /v1/jobs/{id}/logs</c> returned them.</summary>
    public static IReadOnlyList<EgressEvent> Egress(this AgentRun run) =>
    [
        .. run.Events.Where(e => e.GetProperty("kind").GetString() == "egress").Select(e =>
        {
            var message = e.GetProperty("message");
            using var parsed = message.ValueKind == JsonValueKind.String ? JsonDocument.Parse(message.GetString()!) : null;
            var m = parsed?.RootElement ?? message;
            return new EgressEvent(
                m.GetProperty("host").GetString()!,
                m.GetProperty("port").GetInt32(),
                m.TryGetProperty("address", out var address) && address.ValueKind == JsonValueKind.String ? address.GetString() : null,
                m.GetProperty("decision").GetString()!,
                m.TryGetProperty("reason", out var reason) ? reason.GetString() ?? "" : "",
                m.TryGetProperty("protocol", out var protocol) ? protocol.GetString() ?? "" : "",
                Number(m, "bytesUp"),
                Number(m, "bytesDown"));
        }),
    ];

    /// <summary>The job result's <c>egress</c> summary (empty when the result has none).</summary>
    public static IReadOnlyList<EgressSummary> EgressSummary(this AgentRun run) =>
        run.Job.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object
            && result.TryGetProperty("egress", out var egress) && egress.ValueKind == JsonValueKind.Array
            ? [.. egress.EnumerateArray().Select(h => new EgressSummary(
                h.GetProperty("host").GetString()!, h.GetProperty("port").GetInt32(),
                (int)Number(h, "connections"), (int)Number(h, "refused"), Number(h, "bytesUp"), Number(h, "bytesDown")))]
            : [];

    /// <summary>For assertion messages: every egress event and the summary.</summary>
    public static string EgressReport(this AgentRun run) =>
        $"{run}\n  egress events:\n    {string.Join("\n    ", run.Egress())}\n  egress summary:\n    {string.Join("\n    ", run.EgressSummary())}";

    private static long Number(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;
}
