using System.Globalization;
using System.Text.Json;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents that look for the worker's secrets in every environment they can read.</summary>
public sealed class SecretAttackFixture : SandboxWorkerFixture
{
    public string GitToken { get; } = $"awgit-{Guid.NewGuid():N}";

    public string DatabasePassword { get; } = $"awdb-{Guid.NewGuid():N}";

    /// <summary>The one worker variable an agent's allow-list names; it must arrive, so the dump is known to work.</summary>
    public string AllowedValue { get; } = $"allowed-{Guid.NewGuid():N}";

    public IReadOnlyList<string> Secrets => [ApiKey, GitToken, DatabasePassword];

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["GIT_TOKEN"] = GitToken,
        ["SOME_DATABASE_URL"] = $"postgres://app:{DatabasePassword}@127.0.0.1:5432/app",
        ["AW_ALLOWED_VARIABLE"] = AllowedValue,
    };

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
