using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// The HTTPS test server as an agent's vendor: <c>vendor.test</c> and <c>other.test</c> are both pinned to it
/// (EGRESS_RESOLVE), its one address and port is admitted (EGRESS_ALLOW_CIDRS), and the agents, in allowlist, may reach
/// <c>vendor.test:{port}</c> only. The clients find the proxy in the environment the worker set; none is given one.
/// </summary>
public sealed class EgressPositiveFixture : EgressWorkerFixture
{
    public const string OtherName = "other.test";

    public string Mark => $"published-{Nonce}";

    /// <summary>The size of the download that shows bytes are counted.</summary>
    public const int BigMb = 8;

    private TestRepository? _published;

    protected override IReadOnlyList<string> VendorNames => [VendorName, OtherName];

    protected override Task StartServersAsync()
    {
        _published = TestRepository.Create(new Dictionary<string, string> { ["MARK"] = Mark + "\n" });
        Vendor.Publish(_published, "repo");
        return Task.CompletedTask;
    }

    protected override ValueTask StopServersAsync()
    {
        _published?.Dispose();
        return ValueTask.CompletedTask;
    }

    protected override IEnumerable<EgressAgent> EgressAgents =>
    [
        new("curl", $$"""
            curl -sS --max-time 20 --cacert ca.pem "https://{{VendorHost}}/" | sed 's/^/CURL /'
            curl -sS --max-time 60 --cacert ca.pem "https://{{VendorHost}}/big?mb={{BigMb}}" | sha256sum | sed 's/ .*//; s/^/BIG /'
            echo DONE
            """, [VendorHost]),
        new("git", $$"""
            GIT_SSL_CAINFO="$PWD/ca.pem" git clone --quiet "https://{{VendorHost}}/repo.git" fetched 2>&1 | sed 's/^/GIT-ERR /'
            sed 's/^/GIT /' fetched/MARK
            echo DONE
            """, [VendorHost]),
        new("python", $$"""
            python3 - <<'PY'
            import ssl, urllib.request
            context = ssl.create_default_context(cafile="ca.pem")
            with urllib.request.urlopen("https://{{VendorHost}}/", context=context, timeout=20) as reply:
                print("PY", reply.status, reply.read().decode().strip(), flush=True)
            PY
            echo DONE
            """, [VendorHost]),
        new("other", $$"""
            curl -sS --max-time 20 --cacert ca.pem -o /dev/null -w '%{http_connect}' "https://{{OtherName}}:{{Vendor.Port}}/" > code.txt 2> err.txt
            echo "CONNECT-EXIT $?"; echo "CONNECT-CODE $(cat code.txt)"
            curl -sS --max-time 20 -o body.txt -w '%{http_code}' "http://{{OtherName}}:{{Vendor.Port}}/" > code.txt 2> err.txt
            echo "HTTP-CODE $(cat code.txt)"; sed 's/^/HTTP-BODY /' body.txt; echo
            echo DONE
            """, [VendorHost]),
    ];
}

/// <summary>Acceptance 2 of issue 16: curl, git and Python reach the allowed host through the proxy, the bytes are counted, another name on the same server is refused.</summary>
public sealed class EgressPositiveTests(EgressPositiveFixture fixture) : IClassFixture<EgressPositiveFixture>
{
    private const string Network = "allowlist";

    private EgressSummary VendorSummary(AgentRun run) =>
        Assert.Single(run.EgressSummary(), h => h.Host == EgressWorkerFixture.VendorName && h.Port == fixture.Vendor.Port);

    /// <summary>Every connection the run made was to the allowed host, at the address it is pinned to.</summary>
    private void AssertOnlyTheVendor(AgentRun run)
    {
        var events = run.Egress();
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.True(
            e is { Decision: "allowed", Host: EgressWorkerFixture.VendorName } && e.Port == fixture.Vendor.Port && e.Address == fixture.Vendor.Address.ToString(),
            run.EgressReport()));
    }

    [Fact]
    public async Task Curl_ReachesTheAllowedHost_AndTheSummaryCountsItsBytes()
    {
        var handshakes = fixture.Vendor.Handshakes(EgressWorkerFixture.VendorName);

        var run = await fixture.RunEgressAsync("curl", Network);

        Assert.Equal("succeeded", run.State);
        Assert.True(run.Value("CURL") == fixture.Vendor.Body, run.EgressReport());
        Assert.Equal(TlsTestServer.BigSha256(EgressPositiveFixture.BigMb), run.Value("BIG"));
        AssertOnlyTheVendor(run);
        var bytes = (long)EgressPositiveFixture.BigMb << 20;
        Assert.True(run.Egress().Sum(e => e.BytesDown) > bytes, run.EgressReport());
        var summary = VendorSummary(run);
        Assert.Equal(2, summary.Connections);
        Assert.Equal(0, summary.Refused);
        Assert.True(summary.BytesDown > bytes && summary.BytesUp > 0, summary.ToString());
        Assert.Equal(handshakes + 2, fixture.Vendor.Handshakes(EgressWorkerFixture.VendorName));
    }

    [Fact]
    public async Task GitClone_OverHttps_ReachesTheAllowedHost()
    {
        var run = await fixture.RunEgressAsync("git", Network);

        Assert.True(run.Value("GIT") == fixture.Mark, run.EgressReport());
        AssertOnlyTheVendor(run);
        Assert.True(VendorSummary(run).BytesDown > 0, run.EgressReport());
        Assert.Contains(fixture.Vendor.Requests, r => r.StartsWith($"{fixture.VendorHost} /repo.git/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PythonUrllib_ReachesTheAllowedHost()
    {
        var run = await fixture.RunEgressAsync("python", Network);

        Assert.True(run.Value("PY") == $"200 {fixture.Vendor.Body}", run.EgressReport());
        AssertOnlyTheVendor(run);
        Assert.True(VendorSummary(run).BytesDown > 0, run.EgressReport());
    }

    [Fact]
    public async Task AnotherName_OnTheSameServer_IsRefusedAndRecorded()
    {
        var connections = fixture.Vendor.Connections;

        var run = await fixture.RunEgressAsync("other", Network);

        run.AssertFinished();
        Assert.Equal("56", run.Value("CONNECT-EXIT"));
        Assert.Equal("403", run.Value("CONNECT-CODE"));
        Assert.Equal("403", run.Value("HTTP-CODE"));
        Assert.StartsWith($"agent-worker egress: refused {EgressPositiveFixture.OtherName}:{fixture.Vendor.Port}: ", run.Value("HTTP-BODY"), StringComparison.Ordinal);
        var events = run.Egress();
        Assert.Equal(2, events.Count);
        Assert.All(events, e => Assert.True(
            e is { Decision: "refused", Host: EgressPositiveFixture.OtherName, BytesUp: 0, BytesDown: 0 } && e.Port == fixture.Vendor.Port && e.Reason.Length > 0,
            run.EgressReport()));
        var summary = Assert.Single(run.EgressSummary());
        Assert.Equal((EgressPositiveFixture.OtherName, 0, 2), (summary.Host, summary.Connections, summary.Refused));
        // Refused before any connect: the server saw neither a connection nor the name.
        Assert.Equal(0, fixture.Vendor.Handshakes(EgressPositiveFixture.OtherName));
        Assert.Equal(connections, fixture.Vendor.Connections);
    }
}
