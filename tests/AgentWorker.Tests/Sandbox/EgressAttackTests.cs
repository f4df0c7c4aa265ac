using System.Globalization;
using System.Net;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>One place a hostile agent asks the egress proxy for: <c>label host port</c>, as the probe takes it.</summary>
public sealed record EgressTarget(string Label, string Host, int Port)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Label} {Host} {Port}");
}

/// <summary>
/// Hostile agents in <c>allowlist</c> and <c>full</c> against the host: the worker's own port, a loopback "Redis", every
/// spelling of loopback, the metadata and a private address, a name pinned to loopback, an allowed name on another port,
/// through the HTTP proxy (absolute URI and CONNECT) and SOCKS5, and raw sockets around the proxy. Every port the agents
/// name belongs to a canary on the host (or the worker), so each refusal is matched to its event by port and each canary
/// shows that nothing arrived. Nothing is ever sent to a non-loopback address: the proxy refuses those before connecting,
/// and the raw attempts at them run only once the agent's namespace shows no route.
/// </summary>
public sealed class EgressAttackFixture : EgressWorkerFixture
{
    private readonly Dictionary<string, CountingListener> _canaries = [];
    private CountingListener? _udp;

    /// <summary>What the TCP canaries answer: seeing it in a job log means an agent reached one.</summary>
    public string Banner => $"canary-{Nonce}";

    internal IReadOnlyDictionary<string, CountingListener> Canaries => _canaries;

    internal CountingListener UdpCanary => _udp!;

    private int CanaryPort(string label) => _canaries[label].Port;

    /// <summary>Every target the proxy must refuse, on ports of their own (the worker's port is its own).</summary>
    public IReadOnlyList<EgressTarget> Targets =>
    [
        new("worker", "127.0.0.1", Port),
        new("redis", "127.0.0.1", CanaryPort("redis")),
        new("localhost", "localhost", CanaryPort("localhost")),
        new("ipv6", "::1", CanaryPort("ipv6")),
        new("mapped", "::ffff:127.0.0.1", CanaryPort("mapped")),
        new("zero", "0.0.0.0", CanaryPort("zero")),
        new("decimal", "2130706433", CanaryPort("decimal")),
        new("octal", "0177.0.0.1", CanaryPort("octal")),
        new("metadata", "169.254.169.254", CanaryPort("metadata")),
        new("private", "10.0.0.1", CanaryPort("private")),
        // Allowed by name in allowlist (see the agents), pinned to 127.0.0.1: refused for the address it resolves to.
        new("pinned", "sneaky.test", CanaryPort("pinned")),
        // An allowed name on a port its entry does not name (pinned to a loopback canary, so even a broken check sends no lookup).
        new("vendor-port", VendorName, CanaryPort("vendor-port")),
    ];

    /// <summary>The pinned name's ports for curl's three ways through the proxy: plain HTTP, CONNECT, SOCKS5.</summary>
    public IReadOnlyList<int> CurlPorts => [CanaryPort("curl-http"), CanaryPort("curl-connect"), CanaryPort("curl-socks")];

    private static readonly string[] Pinned = ["pinned", "vendor-port", "curl-http", "curl-connect", "curl-socks"];

    protected override IEnumerable<string> ExtraPins =>
        Pinned.Select(label => $"{(label == "vendor-port" ? VendorName : "sneaky.test")}:{CanaryPort(label)}:127.0.0.1");

    protected override Task StartServersAsync()
    {
        foreach (var label in new[] { "redis", "localhost", "mapped", "zero", "decimal", "octal", "metadata", "private" }.Concat(Pinned))
            _canaries[label] = CountingListener.Tcp($"-NOAUTH {Banner}\r\n");
        _canaries["ipv6"] = CountingListener.Tcp($"-NOAUTH {Banner}\r\n", IPAddress.IPv6Loopback);
        _udp = CountingListener.Udp();
        return Task.CompletedTask;
    }

    protected override async ValueTask StopServersAsync()
    {
        foreach (var canary in _canaries.Values)
            await canary.DisposeAsync();
        if (_udp is not null)
            await _udp.DisposeAsync();
    }

    protected override IReadOnlyDictionary<string, string> EgressRepositoryFiles => new Dictionary<string, string>
    {
        // For each "label host port": a plain-HTTP request (absolute URI) and a CONNECT to the HTTP proxy, and a SOCKS5
        // CONNECT, each spoken by hand to the proxies the environment names (so nothing about the target is rewritten on
        // the way); prints each status line, body line and SOCKS reply code.
        ["egress.py"] = """
            import ipaddress, os, socket, struct, sys, urllib.parse

            def proxy(name):
                value = os.environ.get(name) or os.environ.get(name.lower())
                if not value:
                    return None
                url = urllib.parse.urlsplit(value)
                return (url.hostname, url.port)

            def authority(host, port):
                return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

            def read_reply(s):
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = None
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    while (length is None or len(body) < length) and len(body) < 65536:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        body += chunk
                except OSError:
                    pass
                return head.decode("latin-1"), body.decode("latin-1")

            def http(kind, label, host, port):
                address = proxy("HTTP_PROXY")
                if address is None:
                    print(kind, label, "NO-PROXY-ENV", flush=True)
                    return
                target = authority(host, port)
                if kind == "CONNECT":
                    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
                else:
                    request = f"GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
                try:
                    s = socket.create_connection(address, timeout=5)
                    s.sendall(request.encode())
                    head, body = read_reply(s)
                    s.close()
                except OSError as e:
                    print(kind, label, "ERROR", e, flush=True)
                    return
                print(kind, label, "STATUS", head.split("\r\n")[0], flush=True)
                for line in body.splitlines():
                    print(kind, label, "BODY", line, flush=True)

            def socks(label, host, port):
                address = proxy("ALL_PROXY")
                if address is None:
                    print("SOCKS", label, "NO-PROXY-ENV", flush=True)
                    return
                try:
                    ip = ipaddress.ip_address(host)
                except ValueError:
                    ip = None
                if ip is None:
                    destination = b"\x03" + bytes([len(host)]) + host.encode()
                else:
                    destination = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
                try:
                    s = socket.create_connection(address, timeout=5)
                    s.sendall(b"\x05\x01\x00")
                    if s.recv(2) != b"\x05\x00":
                        print("SOCKS", label, "NO-METHOD", flush=True)
                        return
                    s.sendall(b"\x05\x01\x00" + destination + struct.pack(">H", port))
                    reply = s.recv(2)
                    s.close()
                except OSError as e:
                    print("SOCKS", label, "ERROR", e, flush=True)
                    return
                print("SOCKS", label, "REPLY", reply[1] if len(reply) == 2 else "none", flush=True)

            args = sys.argv[1:]
            for i in range(0, len(args), 3):
                label, host, port = args[i], args[i + 1], int(args[i + 2])
                http("HTTP", label, host, port)
                http("CONNECT", label, host, port)
                socks(label, host, port)
            """,
        // Around the proxy: "tcp|udp label host port" on loopback goes as it is (inside the sandbox it can only reach the
        // namespace's own lo); "outside-tcp|outside-udp" (a non-loopback address) only when the namespace has no route,
        // so even a broken sandbox sends nothing off the machine.
        ["raw.py"] = """
            import socket, sys

            def no_route():
                with open("/proc/net/route") as f:
                    v4 = len(f.readlines()) - 1
                with open("/proc/net/ipv6_route") as f:
                    v6 = [l for l in f if not l.rstrip().endswith(" lo")]
                return v4 == 0 and not v6

            def attempt(kind, label, host, port):
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                if kind == "tcp":
                    s = socket.socket(family, socket.SOCK_STREAM)
                    s.settimeout(3)
                    try:
                        s.connect((host, port))
                        print("RAW-TCP", label, "CONNECTED", s.recv(200).decode("latin-1").strip(), flush=True)
                    except OSError as e:
                        print("RAW-TCP", label, "FAILED", e.errno, flush=True)
                else:
                    s = socket.socket(family, socket.SOCK_DGRAM)
                    try:
                        s.sendto(b"canary", (host, port))
                        print("RAW-UDP", label, "SENT", flush=True)
                    except OSError as e:
                        print("RAW-UDP", label, "FAILED", e.errno, flush=True)
                s.close()

            args = sys.argv[1:]
            for i in range(0, len(args), 4):
                kind, label, host, port = args[i], args[i + 1], args[i + 2], int(args[i + 3])
                if kind.startswith("outside-"):
                    if not no_route():
                        print("RAW-SKIPPED", label, flush=True)
                        continue
                    kind = kind[len("outside-"):]
                attempt(kind, label, host, port)
            """,
    };

    protected override IEnumerable<EgressAgent> EgressAgents =>
    [
        new("probe", """
            python3 egress.py $1
            echo DONE
            """, [VendorHost, $"sneaky.test:{CanaryPort("pinned")}"]),
        // curl as agents run it: the proxies come from the environment the worker set, never from -x.
        new("curl", """
            set -- $1
            curl -sS --max-time 10 -o body.txt -w '%{http_code}' "http://sneaky.test:$1/" > code.txt 2> err.txt
            echo "CURL-HTTP-EXIT $?"; echo "CURL-HTTP-CODE $(cat code.txt)"; sed 's/^/CURL-HTTP-BODY /' body.txt; echo
            curl -sS --max-time 10 --cacert ca.pem -o /dev/null -w '%{http_connect}' "https://sneaky.test:$2/" > code.txt 2> err.txt
            echo "CURL-CONNECT-EXIT $?"; echo "CURL-CONNECT-CODE $(cat code.txt)"; sed 's/^/CURL-CONNECT-ERR /' err.txt
            curl -sS --max-time 10 --proxy "$ALL_PROXY" "http://sneaky.test:$3/" > /dev/null 2> err.txt
            echo "CURL-SOCKS-EXIT $?"; sed 's/^/CURL-SOCKS-ERR /' err.txt
            echo DONE
            """, [VendorHost, .. CurlPorts.Select(port => $"sneaky.test:{port}")]),
        new("raw", """
            python3 raw.py $1
            echo DONE
            """, [VendorHost]),
        new("vendor", """
            curl -sS --max-time 20 --cacert ca.pem "https://$1/" | sed 's/^/VENDOR /'
            echo DONE
            """, [VendorHost]),
        new("interfaces", NetworkAttackFixture.InterfacesProbe, [VendorHost]),
    ];
}

/// <summary>Acceptance 1 of issue 16: in allowlist and in full, the proxy refuses the host and private networks and says why, and nothing goes around it.</summary>
public sealed class EgressAttackTests(EgressAttackFixture fixture) : IClassFixture<EgressAttackFixture>
{
    public static TheoryData<string> ProxiedModes => ["allowlist", "full"];

    private const string RefusalLine = "agent-worker egress: refused ";

    /// <summary>Each canary's count, settled (everything the agent sent has been handled).</summary>
    private async Task<Dictionary<string, int>> CanaryCountsAsync()
    {
        var counts = new Dictionary<string, int>();
        foreach (var (label, canary) in fixture.Canaries)
            counts[label] = await canary.SettledCountAsync();
        counts["udp"] = await fixture.UdpCanary.SettledCountAsync();
        return counts;
    }

    [Theory]
    [MemberData(nameof(ProxiedModes))]
    public async Task ProxiedAttempts_AtHostAndPrivateAddresses_AreRefusedWithAReason_AndRecorded(string network)
    {
        var before = await CanaryCountsAsync();
        var targets = fixture.Targets;

        var run = await fixture.RunEgressAsync("probe", network, string.Join(' ', targets));

        run.AssertFinished();
        var events = run.Egress();
        foreach (var target in targets)
        {
            foreach (var (kind, protocol) in new[] { ("HTTP", "http"), ("CONNECT", "connect") })
            {
                Assert.True(run.Value($"{kind} {target.Label} STATUS")?.StartsWith("HTTP/1.1 403", StringComparison.Ordinal) == true, $"{kind} {target}: {run.EgressReport()}");
                var body = Assert.Single(run.Values($"{kind} {target.Label} BODY"));
                Assert.StartsWith(RefusalLine, body, StringComparison.Ordinal);
                var recorded = events.Where(e => e.Port == target.Port && e.Protocol == protocol).ToList();
                var refusal = Assert.Single(recorded);
                Assert.True(refusal.Refused, $"{kind} {target}: {refusal}");
                Assert.False(string.IsNullOrWhiteSpace(refusal.Reason), $"{kind} {target}: {refusal}");
                // The agent is told the reason that is recorded.
                Assert.EndsWith(": " + refusal.Reason, body, StringComparison.Ordinal);
                Assert.Equal(0, refusal.BytesUp + refusal.BytesDown);
            }
            Assert.True(run.Value($"SOCKS {target.Label} REPLY") == "2", $"SOCKS {target}: {run.EgressReport()}");
            var socks = Assert.Single(events, e => e.Port == target.Port && e.Protocol == "socks5");
            Assert.True(socks.Refused && !string.IsNullOrWhiteSpace(socks.Reason), $"SOCKS {target}: {socks}");
        }
        // A pinned name is refused for the address it is pinned to (a reason without it would mean the pin was not used and
        // the name went to DNS); in allowlist the other port of an allowed name is refused before it is resolved at all.
        foreach (var e in events.Where(e => e.Port == fixture.Canaries["pinned"].Port || (network == "full" && e.Port == fixture.Canaries["vendor-port"].Port)))
            Assert.True(e.Reason.Contains("127.0.0.1", StringComparison.Ordinal), $"{e}\n{run.EgressReport()}");
        Assert.DoesNotContain(events, e => !e.Refused);
        Assert.DoesNotContain(run.Lines, l => l.Contains("uptimeSeconds", StringComparison.Ordinal) || l.Contains(fixture.Banner, StringComparison.Ordinal));
        Assert.Equal(before, await CanaryCountsAsync());
        // The summary counts the refusals and no traffic.
        var summary = run.EgressSummary();
        Assert.Equal(events.Count, summary.Sum(h => h.Refused));
        Assert.All(summary, h => Assert.Equal(0, h.BytesUp + h.BytesDown));
    }

    [Theory]
    [MemberData(nameof(ProxiedModes))]
    public async Task Curl_ThroughTheProxiesTheWorkerSet_ToANamePinnedToLoopback_IsRefused(string network)
    {
        var before = await CanaryCountsAsync();
        var ports = fixture.CurlPorts;

        var run = await fixture.RunEgressAsync("curl", network, string.Join(' ', ports));

        run.AssertFinished();
        // Plain HTTP: curl shows the 403 and the one-line reason.
        Assert.Equal("0", run.Value("CURL-HTTP-EXIT"));
        Assert.Equal("403", run.Value("CURL-HTTP-CODE"));
        Assert.StartsWith($"{RefusalLine}sneaky.test:{ports[0]}: ", run.Value("CURL-HTTP-BODY"), StringComparison.Ordinal);
        // HTTPS: the CONNECT is answered 403, so curl fails (56) without a byte to the target.
        Assert.Equal("56", run.Value("CURL-CONNECT-EXIT"));
        Assert.Equal("403", run.Value("CURL-CONNECT-CODE"));
        // SOCKS5 (socks5h: the proxy resolves): refused by the proxy (curl's CURLE_PROXY).
        Assert.True(run.Value("CURL-SOCKS-EXIT") == "97", run.EgressReport());
        var events = run.Egress();
        foreach (var (port, protocol) in ports.Zip(["http", "connect", "socks5"]))
        {
            var refusal = Assert.Single(events, e => e.Port == port);
            // Refused for the loopback address it is pinned to, so it was never looked up.
            Assert.True(refusal.Refused && refusal.Protocol == protocol && refusal.Host == "sneaky.test" && refusal.Reason.Contains("127.0.0.1", StringComparison.Ordinal), run.EgressReport());
        }
        Assert.Equal(before, await CanaryCountsAsync());
    }

    [Theory]
    [MemberData(nameof(ProxiedModes))]
    public async Task RawSockets_AroundTheProxy_GoNowhere(string network)
    {
        var before = await CanaryCountsAsync();
        var redis = fixture.Canaries["redis"].Port;
        var ipv6 = fixture.Canaries["ipv6"].Port;
        var udp = fixture.UdpCanary.Port;
        var attempts = string.Create(CultureInfo.InvariantCulture,
            $"tcp worker 127.0.0.1 {fixture.Port} tcp redis 127.0.0.1 {redis} tcp ipv6 ::1 {ipv6} udp loopback 127.0.0.1 {udp} outside-tcp private 10.0.0.1 {redis} outside-udp private 10.0.0.1 {udp}");

        var run = await fixture.RunEgressAsync("raw", network, attempts);

        run.AssertFinished();
        const string ConnectionRefused = "111", NetworkUnreachable = "101";
        // Loopback inside the agent's namespace is its own: nothing listens there.
        Assert.Equal($"FAILED {ConnectionRefused}", run.Value("RAW-TCP worker"));
        Assert.Equal($"FAILED {ConnectionRefused}", run.Value("RAW-TCP redis"));
        Assert.StartsWith("FAILED ", run.Value("RAW-TCP ipv6"), StringComparison.Ordinal);
        Assert.Empty(run.Values("RAW-SKIPPED"));
        Assert.Equal($"FAILED {NetworkUnreachable}", run.Value("RAW-TCP private"));
        Assert.Equal($"FAILED {NetworkUnreachable}", run.Value("RAW-UDP private"));
        // The datagram to 127.0.0.1 left the agent's socket and reached nothing of the host.
        Assert.Equal("SENT", run.Value("RAW-UDP loopback"));
        Assert.Equal(before, await CanaryCountsAsync());
        Assert.Empty(run.Egress());
    }

    [Theory]
    [MemberData(nameof(ProxiedModes))]
    public async Task NetworkNamespace_HasOnlyLoopbackAndNoRoute(string network)
    {
        var run = await fixture.RunEgressAsync("interfaces", network);

        NetworkAttackFixture.AssertOnlyLoopback(run);
    }

    /// <summary>The control: the same proxy lets the one allowed host through, so the refusals above are decisions, not a dead proxy.</summary>
    [Theory]
    [MemberData(nameof(ProxiedModes))]
    public async Task AllowedHost_ThroughTheProxy_IsReached(string network)
    {
        var handshakes = fixture.Vendor.Handshakes(EgressWorkerFixture.VendorName);

        var run = await fixture.RunEgressAsync("vendor", network, fixture.VendorHost);

        run.AssertFinished();
        Assert.True(run.Value("VENDOR") == fixture.Vendor.Body, run.EgressReport());
        var allowed = Assert.Single(run.Egress());
        Assert.Equal(("allowed", EgressWorkerFixture.VendorName, fixture.Vendor.Port, fixture.Vendor.Address.ToString()), (allowed.Decision, allowed.Host, allowed.Port, allowed.Address));
        Assert.True(allowed.BytesDown > 0 && allowed.BytesUp > 0, allowed.ToString());
        Assert.Equal(handshakes + 1, fixture.Vendor.Handshakes(EgressWorkerFixture.VendorName));
    }
}
