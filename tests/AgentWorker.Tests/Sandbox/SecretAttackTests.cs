using System.Globalization;
using System.Text;
using System.Text.Json;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents that look for the worker's secrets in every environment they can read.</summary>
public sealed class SecretAttackFixture : SandboxWorkerFixture
{
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
    };

    protected override ValueTask ReleaseAsync()
    {
        Webhooks.Dispose();
        return ValueTask.CompletedTask;
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

        // The channels were used, so finding nothing in them means something.
        reported.AssertFinished();
        Assert.Equal("succeeded", reported.State);
        var finding = reported.Job.GetProperty("result").GetProperty("findings")[0].GetProperty("message").GetString()!;
        Assert.Contains($"AGENT_WORKER_JOB_ID={reported.Id}", finding, StringComparison.Ordinal);
        Assert.Contains(reported.Events, e => e.GetProperty("kind").GetString() == "artifact");
        Assert.True(allowed.Printed($"TOKEN-LENGTH {fixture.GitToken.Length}"), allowed.ToString());
        Assert.Equal("succeeded", builtIn.State);
        Assert.Contains(clone.State, new[] { "failed", "dead" });

        // Both sinks ran for the job: the webhook was delivered, the results table's failure logged with its reason.
        await Eventually.UntilAsync(
            () => Task.FromResult(fixture.Webhooks.Requests.Count(r => Encoding.UTF8.GetString(r.Body).Contains(reported.Id, StringComparison.Ordinal))),
            count => count >= 2,
            TimeSpan.FromSeconds(30),
            $"webhooks of {reported.Id}");
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
        foreach (var run in new[] { reported, allowed, builtIn, clone })
        {
            places[$"GET /v1/jobs/{run.Id}"] = await fixture.Client.GetStringAsync($"/v1/jobs/{run.Id}");
            places[$"events of {run.Id}"] = JsonSerializer.Serialize(run.Events);
            places[$"`jobs show {run.Id}`"] = await CliAsync("jobs", "show", run.Id);
        }
        places["`config show`"] = await CliAsync("config", "show");
        // Every file the worker keeps: the SQLite database with its WAL, the sandbox state, anything left in WORK_DIR.
        foreach (var file in new[] { fixture.DataDir, fixture.WorkDir }.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories)))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var bytes = new MemoryStream();
            stream.CopyTo(bytes);
            places[$"file {file}"] = Encoding.Latin1.GetString(bytes.ToArray());
        }

        Assert.Contains(places.Keys, k => k.EndsWith("queue.db", StringComparison.Ordinal));
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
