using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// Hostile agents that look for the worker's secrets in every environment they can read. One of them (issue 17) calls its
/// vendors through the model gateway: the vendor names are pinned (EGRESS_RESOLVE) to a <see cref="FakeModelVendor"/> on
/// 127.0.0.x:443 whose certificate the worker trusts (SSL_CERT_FILE), and which, like OpenAI, quotes the key it got in its
/// errors.
/// </summary>
public sealed class SecretAttackFixture : SandboxWorkerFixture
{
    private readonly TestCertificateAuthority _authority = new();
    private FakeModelVendor? _vendor;
    private Task<AgentRun>? _gatewayHunt;

    public string GitToken { get; } = $"awgit-{Guid.NewGuid():N}";

    public string DatabasePassword { get; } = $"awdb-{Guid.NewGuid():N}";

    /// <summary>The one worker variable an agent's allow-list names; it must arrive, so the dump is known to work.</summary>
    public string AllowedValue { get; } = $"allowed-{Guid.NewGuid():N}";

    /// <summary>Gets every job's signed webhooks; their bodies and headers are searched too.</summary>
    public WebhookReceiver Webhooks { get; } = WebhookReceiver.Start(_ => 200);

    /// <summary>
    /// One marker per environment name of every secret setting (Setting.cs: apiKey, gitToken, redisUrl, postgresUrl),
    /// the shadowed second names too: AGENT_WEBHOOK_SECRET loses to WORKER_API_KEY but is still in the worker's environment.
    /// </summary>
    public IReadOnlyDictionary<string, string> SecretSettings { get; } = new Dictionary<string, string>
    {
        ["AGENT_WEBHOOK_SECRET"] = $"awhook-{Guid.NewGuid():N}",
        ["GITHUB_TOKEN"] = $"awgh-{Guid.NewGuid():N}",
        ["REDIS_URL"] = $"redis://:awredis{Guid.NewGuid():N}@127.0.0.1:1/0",
        ["POSTGRES_URL"] = $"postgresql://agent:awpg{Guid.NewGuid():N}@127.0.0.1:1/agent",
        ["POSTGRES_DSN"] = $"Host=127.0.0.1;Port=1;Username=agent;Password=awdsn{Guid.NewGuid():N}",
        ["MINIO_SECRET_KEY"] = $"awminio-{Guid.NewGuid():N}",
        ["OPENROUTER_API_KEY"] = $"awor-{Guid.NewGuid():N}",
        // The vendor keys the gateway sends upstream for the agents; no agent may ever hold them.
        ["OPENAI_API_KEY"] = $"awoai-{Guid.NewGuid():N}",
        ["ANTHROPIC_API_KEY"] = $"awant-{Guid.NewGuid():N}",
        ["LLM_API_KEY"] = $"awllm-{Guid.NewGuid():N}",
        ["WEBHOOK_SECRET"] = $"awwhs-{Guid.NewGuid():N}",
        // Nothing listens there: the results sink fails and records why, which must not quote the password.
        ["RESULTS_POSTGRES_URL"] = $"postgresql://agent:awres{Guid.NewGuid():N}@127.0.0.1:1/agent",
    };

    /// <summary>The markers to look for: whole values, and the passwords inside the connection strings on their own.</summary>
    public IReadOnlyList<string> Secrets =>
    [
        ApiKey, GitToken, DatabasePassword, SecretSettings["AGENT_WEBHOOK_SECRET"], SecretSettings["GITHUB_TOKEN"],
        SecretSettings["MINIO_SECRET_KEY"], SecretSettings["OPENROUTER_API_KEY"], SecretSettings["LLM_API_KEY"], SecretSettings["WEBHOOK_SECRET"],
        SecretSettings["OPENAI_API_KEY"], SecretSettings["ANTHROPIC_API_KEY"],
        .. new[] { "REDIS_URL", "POSTGRES_URL", "POSTGRES_DSN", "RESULTS_POSTGRES_URL" }.SelectMany(name => new[] { SecretSettings[name], Password(SecretSettings[name]) }),
    ];

    private static string Password(string connection) =>
        System.Text.RegularExpressions.Regex.Match(connection, "(awredis|awpg|awdsn|awres)[0-9a-f]{32}").Value;

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(SecretSettings)
    {
        ["GIT_TOKEN"] = GitToken,
        // The token is offered to https clones of this host only; the job that clones from it gets a refused connection.
        ["GIT_TOKEN_HOST"] = "127.0.0.1",
        // The connection strings are set but the queue stays in SQLite: a file every byte of which can be searched.
        ["AGENT_WORKER_BACKEND"] = "sqlite",
        ["SOME_DATABASE_URL"] = $"postgres://app:{DatabasePassword}@127.0.0.1:5432/app",
        ["AW_ALLOWED_VARIABLE"] = AllowedValue,
        ["WEBHOOK_URL"] = Webhooks.Url.ToString(),
        ["RESULTS_TABLE"] = "audit_results",
        ["AGENTS_FILE"] = Registry,
        ["EGRESS_RESOLVE"] = Vendor.Pins,
        ["EGRESS_ALLOW_CIDRS"] = Vendor.EndPoint,
        ["SSL_CERT_FILE"] = _authority.WritePem(Dir.Combine("ca.pem")),
        // So that one of the hunter's requests is refused as too large (413) without sending much.
        ["GATEWAY_MAX_REQUEST_MB"] = "1",
        ["AW_CANARY"] = EnvCanary,
    };

    /// <summary>
    /// Markers of the shape of every secret here (<c>aw&lt;letters&gt;-&lt;32 hex&gt;</c>) but no secret, put where the gateway
    /// hunter must find them: in its environment, its command line (the prompt), a file of the repository and the vendor's answers.
    /// Finding those shows the hunt looks in each place; finding nothing else there is the test.
    /// </summary>
    public string EnvCanary { get; } = $"awenvcanary-{Guid.NewGuid():N}";

    public string PromptCanary { get; } = $"awpromptcanary-{Guid.NewGuid():N}";

    public string FileCanary { get; } = $"awfilecanary-{Guid.NewGuid():N}";

    public string AnswerCanary { get; } = $"awanswercanary-{Guid.NewGuid():N}";

    internal FakeModelVendor Vendor => _vendor ?? throw new InvalidOperationException("fixture not initialized");

    private DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;

    private string Registry => Dir.Combine("secret-agents.yaml");

    protected override IReadOnlyDictionary<string, string> RepositoryFiles => new Dictionary<string, string>
    {
        ["README.md"] = "attack target\n",
        ["canary.txt"] = $"not a secret: {FileCanary}\n",
    };

    /// <summary>
    /// The vendor answers as OpenAI does, quoting the key it got in a 401 (model <c>echo-key</c>) and here in a 500 too
    /// (model <c>fail</c>): if the gateway passed such an answer on as it came, the agent would read the real key in it.
    /// </summary>
    protected override async Task PrepareAsync()
    {
        Assert.True(Environment.IsPrivilegedProcess, "the gateway hunter's vendor listens on port 443, where the vendors' upstreams are");
        _vendor = await FakeModelVendor.StartAsync(_authority, ["api.openai.com", "api.anthropic.com"]);
        _vendor.Answer = request => request.Model switch
        {
            "echo-key" => new ModelReply { Status = 401, ErrorMessage = $"Incorrect API key provided: {request.Key}. You can find your API key at https://platform.openai.com/account/api-keys." },
            "fail" => new ModelReply { Status = 500, ErrorMessage = $"The server had an error processing the request of {request.Key}" },
            _ => new ModelReply { Content = $"the answer is {AnswerCanary}" },
        };
        WriteRegistry();
    }

    /// <summary>The base class's agents as it writes them, and the gateway hunter, which needs <c>gateway</c> and <c>network</c>. JSON is YAML.</summary>
    private void WriteRegistry()
    {
        var agents = new JsonArray();
        foreach (var agent in Agents)
        {
            var entry = new JsonObject { ["id"] = agent.Id, ["command"] = new JsonArray("bash", "-c", agent.Script, "agent", "{prompt}") };
            if (agent.Env is { } env)
                entry["env"] = new JsonArray([.. env.Select(name => JsonValue.Create(name))]);
            agents.Add(entry);
        }
        agents.Add(new JsonObject
        {
            ["id"] = "gateway-hunt",
            ["command"] = new JsonArray("bash", "-c", GatewayHunt, "agent", "{prompt}"),
            ["env"] = new JsonArray("AW_CANARY"),
            ["network"] = "allowlist",
            ["allowHosts"] = new JsonArray(),
            ["gateway"] = new JsonArray("openai", "anthropic"),
            ["timeoutSeconds"] = 55,
        });
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Registry, new JsonObject { ["agents"] = agents }.ToJsonString(options));
    }

    /// <summary>
    /// The gateway hunter: looks for anything shaped like a secret here (<c>aw&lt;letters&gt;-&lt;32 hex&gt;</c>, a pattern that
    /// does not match itself) in its environment, every process's <c>/proc/*/environ</c> and <c>/proc/*/cmdline</c>, every
    /// readable file (all of / but /proc, /sys, /dev, and of /usr, the host's, only what changed since the fixture started:
    /// the prompt's first word, in minutes), and every answer of the gateway: good calls, streamed and not, of both vendors;
    /// no key, a made-up placeholder, too large a request, an unknown path, and the vendor's errors that quote the key it got.
    /// Each value found is printed reversed (no output mask touches it) after its source; each answer, reversed, too. The
    /// answers go to answers.txt in the workspace, an artifact and part of the diff.
    /// </summary>
    private const string GatewayHunt = """
        pattern='aw[a-z]+-[0-9a-f]{32}'
        hunt() { grep -aoE "$pattern" | sort -u | rev | sed "s|^|FOUND $1 |"; }
        env | hunt env
        for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\0' '\n' < "$f" 2>/dev/null | hunt "$f"; done
        ask() {
          curl -sS -D /tmp/head -o /tmp/body --max-time 20 -H "$3" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' --data-binary "$4" "$2" 2>/tmp/error
          echo "ANSWER $1 $(head -n 1 /tmp/head | cut -d ' ' -f 2)"
          { echo "== $1"; cat /tmp/head /tmp/body /tmp/error; echo; } > /tmp/answer
          hunt "answer-$1" < /tmp/answer
          tr '\r\n' '  ' < /tmp/answer | cut -c 1-4000 | rev | sed "s|^|REVANSWER $1 |"
          cat /tmp/answer >> answers.txt
        }
        o=$OPENAI_BASE_URL; a=$ANTHROPIC_BASE_URL
        bearer="Authorization: Bearer $OPENAI_API_KEY"; xkey="x-api-key: $ANTHROPIC_API_KEY"
        chat='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
        ask ok "$o/chat/completions" "$bearer" "$chat"
        ask stream "$o/chat/completions" "$bearer" '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
        ask anthropic "$a/v1/messages" "$xkey" '{"model":"claude-sonnet-4","max_tokens":8,"messages":[]}'
        ask anthropic-stream "$a/v1/messages" "$xkey" '{"model":"claude-sonnet-4","max_tokens":8,"stream":true,"messages":[]}'
        ask no-key "$o/chat/completions" "X-Nothing: 1" "$chat"
        ask made-up-key "$o/chat/completions" "Authorization: Bearer awgw-$(printf '0%.0s' $(seq 64))" "$chat"
        ask anthropic-no-key "$a/v1/messages" "X-Nothing: 1" "$chat"
        ask echo-key "$o/chat/completions" "$bearer" '{"model":"echo-key","messages":[]}'
        ask anthropic-echo-key "$a/v1/messages" "$xkey" '{"model":"echo-key","max_tokens":8,"messages":[]}'
        ask fail "$o/chat/completions" "$bearer" '{"model":"fail","messages":[]}'
        ask no-such-path "$o/no/such/path" "$bearer" "$chat"
        head -c 2000000 /dev/zero | tr '\0' 'a' > /tmp/large
        ask too-large "$o/chat/completions" "$bearer" @/tmp/large
        { find / \( -path /proc -o -path /sys -o -path /dev -o -path /usr \) -prune -o -type f -readable -size -16M -print0
          find /usr -type f -readable -mmin "-${1%% *}" -print0; } 2>/dev/null | xargs -0 -r grep -laE "$pattern" 2>/dev/null |
          while IFS= read -r f; do hunt "$f" < "$f"; done
        printf '{"type":"artifact","path":"answers.txt"}\n'
        echo DONE
        """;

    /// <summary>The gateway hunter's one run, shared by the tests that search it and what the worker wrote about it.</summary>
    public Task<AgentRun> GatewayHuntAsync() => _gatewayHunt ??= RunAsync(
        "gateway-hunt", $"{(int)Math.Ceiling((DateTimeOffset.UtcNow - Started).TotalMinutes) + 1} {PromptCanary}", network: "allowlist");

    protected override async ValueTask ReleaseAsync()
    {
        Webhooks.Dispose();
        if (_vendor is not null)
            await _vendor.DisposeAsync();
        _authority.Dispose();
    }

    // Every dump is printed as is and reversed: the worker masks the secrets it knows in agent output, and
    // an attacker would not hand them over in a form the mask recognises.
    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("dump-secrets", """
            env | sed 's/^/ENV /'
            env | rev | sed 's/^/REV /'
            for f in /proc/1/environ /proc/self/environ /proc/[0-9]*/environ "/proc/$1/environ"; do
              if tr '\0' '\n' < "$f" > dump 2>/dev/null; then
                sed "s|^|PROCENV $f |" dump
                rev dump | sed 's/^/REV /'
              fi
            done
            if tr '\0' ' ' < "/proc/$1/cmdline"; then echo; echo WORKER-CMDLINE-READ; fi
            echo DONE
            """, Env: ["AW_ALLOWED_VARIABLE"]),
        // Hands its whole environment back through every structured channel: a finding, a progress line, a log
        // message, the result summary and an artifact file in the workspace.
        new("report-env", """
            env > env.txt
            dump=$(env | tr '\n' ' ' | tr -d '"\\')
            printf '{"type":"finding","severity":"low","rule":"env-dump","file":"env.txt","line":1,"message":"%s"}\n' "$dump"
            printf '{"type":"progress","percent":50,"message":"%s"}\n' "$dump"
            printf '{"type":"log","level":"info","message":"%s"}\n' "$dump"
            printf '{"type":"artifact","path":"env.txt"}\n'
            printf '{"type":"result","summary":"%s"}\n' "$dump"
            echo DONE
            """, Env: ["AW_ALLOWED_VARIABLE"]),
        // An operator may allow-list a secret for an agent: the agent sees it, the records get it masked.
        new("allowed-secret", """
            echo "TOKEN-LENGTH ${#GIT_TOKEN}"
            echo "plain $GIT_TOKEN"
            echo "to stderr $GIT_TOKEN" >&2
            printf '{"type":"finding","severity":"high","rule":"token","message":"%s"}\n' "$GIT_TOKEN"
            echo DONE
            """, Env: ["GIT_TOKEN"]),
    ];
}

/// <summary>Secret containment: the worker's keys, tokens and connection strings reach no agent, log or record.</summary>
public sealed class SecretAttackTests(SecretAttackFixture fixture) : IClassFixture<SecretAttackFixture>
{
    /// <summary>
    /// What the contract lets in, plus what bash itself sets, and DOTNET_ROOT: the worker hands every agent the
    /// runtime's directory so built-in agents start inside the sandbox (a host path, not a secret).
    /// </summary>
    private static readonly HashSet<string> AllowedVariables =
    [
        "PATH", "LANG", "TZ", "HOME", "TMPDIR", "AGENT_WORKER_JOB_ID", "AGENT_WORKER_WORKSPACE", "AGENT_WORKER_ARTIFACTS", "MCP_CONNECTION_URL",
        "AW_ALLOWED_VARIABLE", "DOTNET_ROOT", "PWD", "SHLVL", "_", "OLDPWD",
    ];

    [Fact]
    public async Task DumpEnvironmentAndProcEnviron_RevealsNoWorkerSecret()
    {
        var pid = fixture.Worker.Pid.ToString(CultureInfo.InvariantCulture);

        var run = await fixture.RunAsync("dump-secrets", pid);

        run.AssertFinished();
        // The dump worked: the job's own variables and the allow-listed one are there.
        Assert.Contains($"AGENT_WORKER_JOB_ID={run.Id}", run.Values("ENV"));
        Assert.Contains($"AW_ALLOWED_VARIABLE={fixture.AllowedValue}", run.Values("ENV"));
        var visible = string.Join('\n', run.Lines);
        var record = (await fixture.Client.GetStringAsync($"/v1/jobs/{run.Id}")) + JsonSerializer.Serialize(run.Events);
        foreach (var secret in fixture.Secrets)
        {
            var reversed = new string(secret.Reverse().ToArray());
            Assert.False(visible.Contains(secret, StringComparison.Ordinal) || visible.Contains(reversed, StringComparison.Ordinal), $"secret {secret} reached the agent: {run}");
            Assert.DoesNotContain(secret, record, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, fixture.Worker.Output, StringComparison.Ordinal);
        }
        Assert.False(run.Printed("WORKER-CMDLINE-READ"), run.ToString());
    }

    [Fact]
    public async Task EverythingTheWorkerWrites_AndEveryAgentEnvironment_HoldsNoSecretMarker()
    {
        var reported = await fixture.RunAsync("report-env");
        var allowed = await fixture.RunAsync("allowed-secret");
        var builtIn = await fixture.RunAsync("ssot_auditor");
        // git gets the token for https clones of GIT_TOKEN_HOST; the clone fails (nothing listens), and its error is recorded.
        var clone = await fixture.RunAsync("report-env", repoUrl: "https://127.0.0.1:1/private.git");
        // Issue 17: a run that called its vendors through the gateway, with answers good and bad, an artifact and a diff.
        var gateway = await fixture.GatewayHuntAsync();

        // The channels were used, so finding nothing in them means something.
        reported.AssertFinished();
        Assert.Equal("succeeded", reported.State);
        var finding = reported.Job.GetProperty("result").GetProperty("findings")[0].GetProperty("message").GetString()!;
        Assert.Contains($"AGENT_WORKER_JOB_ID={reported.Id}", finding, StringComparison.Ordinal);
        Assert.Contains(reported.Events, e => e.GetProperty("kind").GetString() == "artifact");
        Assert.True(allowed.Printed($"TOKEN-LENGTH {fixture.GitToken.Length}"), allowed.ToString());
        Assert.Equal("succeeded", builtIn.State);
        Assert.Contains(clone.State, new[] { "failed", "dead" });
        gateway.AssertFinished();
        Assert.Contains(gateway.Events, e => e.GetProperty("kind").GetString() == "model");

        // Both sinks ran for the job: the webhook was delivered, the results table's failure logged with its reason.
        foreach (var id in new[] { reported.Id, gateway.Id })
        {
            await Eventually.UntilAsync(
                () => Task.FromResult(fixture.Webhooks.Requests.Count(r => Encoding.UTF8.GetString(r.Body).Contains(id, StringComparison.Ordinal))),
                count => count >= 2,
                TimeSpan.FromSeconds(30),
                $"webhooks of {id}");
        }
        var sinkLog = await Eventually.UntilAsync(
            () => fixture.Client.GetStringAsync($"/v1/jobs/{reported.Id}/logs"),
            log => log.Contains("results table", StringComparison.Ordinal) && log.Contains("retrying", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30),
            $"results sink failure of {reported.Id} logged");

        var places = new Dictionary<string, string>
        {
            ["delivery log"] = sinkLog,
            ["webhook requests"] = string.Join('\n', fixture.Webhooks.Requests.Select(r =>
                $"{r.PathAndQuery} {string.Join(' ', r.Headers.Select(h => $"{h.Key}: {h.Value}"))} {Encoding.UTF8.GetString(r.Body)}")),
            ["worker log (stdout and stderr)"] = fixture.Worker.Output,
            ["GET /v1/jobs"] = await fixture.Client.GetStringAsync("/v1/jobs?limit=500"),
            ["GET /health"] = await fixture.Client.GetStringAsync("/health"),
            ["GET /metrics"] = await fixture.Client.GetStringAsync("/metrics"),
        };
        foreach (var run in new[] { reported, allowed, builtIn, clone, gateway })
        {
            places[$"GET /v1/jobs/{run.Id}"] = await fixture.Client.GetStringAsync($"/v1/jobs/{run.Id}");
            using (var receipt = await fixture.Client.GetAsync($"/v1/jobs/{run.Id}/receipt"))
                places[$"GET /v1/jobs/{run.Id}/receipt"] = await receipt.Content.ReadAsStringAsync();
            places[$"events of {run.Id}"] = JsonSerializer.Serialize(run.Events);
            places[$"`jobs show {run.Id}`"] = await CliAsync("jobs", "show", run.Id);
        }
        places["`config show`"] = await CliAsync("config", "show");
        // The gateway run's artifacts as the API serves them: answers.txt, with every answer the gateway gave, and the diff.
        var artifacts = (await fixture.Client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{gateway.Id}/artifacts")).GetProperty("items").EnumerateArray().Select(a => a.GetProperty("name").GetString()!).ToList();
        Assert.Contains("workspace/answers.txt", artifacts);
        foreach (var name in artifacts)
            places[$"artifact {name} of {gateway.Id}"] = await fixture.Client.GetStringAsync($"/v1/jobs/{gateway.Id}/artifacts/{name}");
        Assert.Contains("== too-large", places[$"artifact workspace/answers.txt of {gateway.Id}"], StringComparison.Ordinal);
        // Every file the worker keeps: the SQLite database with its WAL, the sandbox state, anything left in WORK_DIR.
        foreach (var file in new[] { fixture.DataDir, fixture.WorkDir }.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories)))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var bytes = new MemoryStream();
            stream.CopyTo(bytes);
            places[$"file {file}"] = Encoding.Latin1.GetString(bytes.ToArray());
        }

        Assert.Contains(places.Keys, k => k.EndsWith("queue.db", StringComparison.Ordinal));
        // The gateway run's artifact and diff are among the files searched.
        Assert.Contains(places, p => p.Key.StartsWith("file ", StringComparison.Ordinal) && p.Value.Contains("== too-large", StringComparison.Ordinal));
        foreach (var secret in fixture.Secrets)
        {
            var latin1 = Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(secret));
            foreach (var (place, text) in places)
                Assert.False(text.Contains(secret, StringComparison.Ordinal) || text.Contains(latin1, StringComparison.Ordinal), $"secret {secret} found in {place}");
        }
        // The allow-listed token reached its agent but was masked in its output.
        Assert.Contains("plain ***", allowed.Lines);
    }

    /// <summary>Runs the CLI against the fixture's store with the fixture's secrets in its environment.</summary>
    private async Task<string> CliAsync(params string[] args)
    {
        var environment = new Dictionary<string, string>(fixture.SecretSettings)
        {
            ["AGENT_WORKER_DATA"] = fixture.DataDir,
            ["WORK_DIR"] = fixture.WorkDir,
            ["AGENT_WORKER_BACKEND"] = "sqlite",
            ["WORKER_API_KEY"] = fixture.ApiKey,
            ["GIT_TOKEN"] = fixture.GitToken,
        };
        var cli = WorkerProcess.Start(environment, args);
        await using (cli)
        {
            Assert.Equal(0, await cli.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            return cli.Output;
        }
    }

    /// <summary>
    /// Issue 17, acceptance 2: an agent that uses the gateway looks for the vendors' real keys (and every other worker
    /// secret) in its environment, every <c>/proc/*/environ</c> and <c>/proc/*/cmdline</c>, every readable file and every
    /// answer of the gateway, errors included, and finds nothing but the canaries put there to show it looks.
    /// </summary>
    [Fact]
    public async Task GatewayAgent_FindsNoVendorKey_InItsEnvironmentProcFilesOrTheGatewaysAnswers()
    {
        var run = await fixture.GatewayHuntAsync();

        run.AssertFinished();
        // It used the gateway, which refused what it should and passed the vendor's answers (and errors) back.
        var statuses = run.Values("ANSWER").ToDictionary(v => v.Split(' ')[0], v => v.Split(' ').ElementAtOrDefault(1));
        Assert.Equal(
            new Dictionary<string, string?>
            {
                ["ok"] = "200", ["stream"] = "200", ["anthropic"] = "200", ["anthropic-stream"] = "200",
                ["no-key"] = "401", ["made-up-key"] = "401", ["anthropic-no-key"] = "401", ["echo-key"] = "401", ["anthropic-echo-key"] = "401",
                ["fail"] = "500", ["no-such-path"] = "404", ["too-large"] = "413",
            },
            statuses);
        // The vendor got the real keys, so they were there to leak.
        Assert.Contains(fixture.Vendor.Requests, r => r.Key == fixture.SecretSettings["OPENAI_API_KEY"] && r.Model == "echo-key");
        Assert.Contains(fixture.Vendor.Requests, r => r.Key == fixture.SecretSettings["ANTHROPIC_API_KEY"] && r.Model == "echo-key");

        var found = run.Values("FOUND").Select(v => (Source: v[..v.LastIndexOf(' ')], Value: new string([.. v[(v.LastIndexOf(' ') + 1)..].Reverse()]))).ToList();
        var report = $"{run}\n  found:\n    {string.Join("\n    ", found)}";
        // The hunt looks in every place: each canary turned up where it was put, and so did the agent's own placeholder.
        Assert.True(found.Contains(("env", fixture.EnvCanary)), report);
        Assert.True(found.Any(f => f.Source.StartsWith("/proc/", StringComparison.Ordinal) && f.Source.EndsWith("/environ", StringComparison.Ordinal) && f.Value == fixture.EnvCanary), report);
        Assert.True(found.Any(f => f.Source.StartsWith("/proc/", StringComparison.Ordinal) && f.Source.EndsWith("/cmdline", StringComparison.Ordinal) && f.Value == fixture.PromptCanary), report);
        Assert.True(found.Contains(("/workspace/canary.txt", fixture.FileCanary)), report);
        Assert.True(found.Contains(("answer-ok", fixture.AnswerCanary)), report);
        Assert.True(found.Any(f => f.Source == "env" && f.Value.StartsWith("awgw-", StringComparison.Ordinal)), report);
        // ... and no secret of the worker's anywhere.
        var leaked = found.Where(f => fixture.Secrets.Any(secret => secret.Contains(f.Value, StringComparison.Ordinal))).ToList();
        Assert.True(leaked.Count == 0, $"worker secrets found: {string.Join(", ", leaked)}\n{report}");
        var printed = string.Join('\n', run.Lines);
        foreach (var secret in fixture.Secrets)
        {
            Assert.False(printed.Contains(secret, StringComparison.Ordinal) || printed.Contains(new string([.. secret.Reverse()]), StringComparison.Ordinal), $"secret {secret} reached the agent: {report}");
        }
    }

    [Fact]
    public async Task AgentEnvironment_HoldsOnlyTheAllowList()
    {
        var run = await fixture.RunAsync("dump-secrets", "0");

        run.AssertFinished();
        var names = run.Values("ENV").Select(v => v.Split('=')[0]).ToList();
        Assert.All(names, name => Assert.Contains(name, AllowedVariables));
        Assert.Contains("HOME=/home/agent", run.Values("ENV"));
        Assert.Contains("AGENT_WORKER_WORKSPACE=/workspace", run.Values("ENV"));
        Assert.Contains("AGENT_WORKER_ARTIFACTS=/artifacts", run.Values("ENV"));
    }
}
