using System.Diagnostics;
using System.Reflection;
using AgentWorker.Configuration;
using AgentWorker.Testing;
using YamlDotNet.RepresentationModel;

namespace AgentWorker.Tests.Packaging;

/// <summary>
/// The deployment files as their tools read them: the compose file and the CI workflow as YAML, the systemd unit
/// through systemd-analyze, the Dockerfile's promises (there is no Docker engine here to build it), and the tool
/// package through a real `dotnet pack` and `dotnet tool install` from a local feed.
/// </summary>
public sealed class PackagingTests : IDisposable
{
    private static readonly string Root = FindRoot();

    private readonly TempDirectory _dir = new("aw-pack");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AgentWorker.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no AgentWorker.slnx above {AppContext.BaseDirectory}");
    }

    private static YamlMappingNode Yaml(string relative)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(Root, relative))));
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    private static YamlMappingNode Map(YamlNode node, string key) => (YamlMappingNode)((YamlMappingNode)node)[key];

    private static IEnumerable<string> Keys(YamlNode node) => ((YamlMappingNode)node).Children.Keys.Select(k => ((YamlScalarNode)k).Value!);

    [Fact]
    public void ComposeFile_RunsTheWorkerWithRedisPostgresAndAnS3Store_UsingOnlyKnownSettings()
    {
        var compose = Yaml("deploy/compose.yaml");
        var services = Map(compose, "services");
        var worker = Map(services, "worker");
        var environment = Map(worker, "environment");

        Assert.Equal(["minio", "postgres", "redis", "worker"], Keys(services).Order());
        var known = Settings.All.SelectMany(s => s.Env).ToHashSet();
        Assert.All(Keys(environment), name => Assert.True(known.Contains(name), $"{name} is no setting"));
        Assert.StartsWith("redis://redis:", environment["REDIS_URL"].ToString(), StringComparison.Ordinal);
        Assert.Contains("@postgres:5432/", environment["POSTGRES_URL"].ToString(), StringComparison.Ordinal);
        Assert.StartsWith("http://minio:", environment["MINIO_ENDPOINT"].ToString(), StringComparison.Ordinal);
        Assert.Equal(["minio", "postgres", "redis"], Keys(worker["depends_on"]).Order());
        Assert.Contains("systempaths=unconfined", ((YamlSequenceNode)worker["security_opt"]).Select(n => n.ToString()));
        var declared = Keys(compose["volumes"]).ToHashSet();
        foreach (var service in services.Children.Values.Cast<YamlMappingNode>().Where(s => s.Children.ContainsKey("volumes")))
            Assert.All((YamlSequenceNode)service["volumes"], v => Assert.Contains(v.ToString().Split(':')[0], declared));
    }

    [Fact]
    public void SystemdUnit_PassesSystemdAnalyzeVerify_WithTheHardeningItPromises()
    {
        var unit = File.ReadAllText(Path.Combine(Root, "deploy/agent-worker.service"));
        // verify checks that ExecStart exists: point it at this build's binary instead of /opt/agent-worker.
        var copy = _dir.Combine("agent-worker.service");
        File.WriteAllText(copy, unit.Replace("/opt/agent-worker/agent-worker", Path.Combine(AppContext.BaseDirectory, "agent-worker"), StringComparison.Ordinal));

        var (exit, output) = Run("systemd-analyze", "verify", copy);

        // Unknown or misspelt keys are only warnings to systemd: any output at all fails the check.
        Assert.True(exit == 0 && output.Trim().Length == 0, $"systemd-analyze verify: exit {exit}\n{output}");
        foreach (var line in new[] { "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=", "Delegate=yes", "KillSignal=SIGTERM" })
            Assert.Contains(line, unit.Split('\n'));
    }

    [Fact]
    public void Dockerfile_IsMultiStage_NonRoot_WithBubblewrapAndAHealthcheck()
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "Dockerfile")).Select(l => l.Trim()).ToList();

        Assert.True(lines.Count(l => l.StartsWith("FROM ", StringComparison.Ordinal)) >= 2, "multi-stage");
        Assert.Contains(lines, l => l.StartsWith("COPY --from=build ", StringComparison.Ordinal));
        var user = Assert.Single(lines, l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.DoesNotContain(user[5..].Trim(), new[] { "root", "0", "0:0" });
        Assert.Contains(lines, l => l.Contains("bubblewrap", StringComparison.Ordinal) && l.Contains("git", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("HEALTHCHECK ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("/ready", StringComparison.Ordinal));
        Assert.Contains("ENTRYPOINT [\"/opt/agent-worker/agent-worker\"]", lines);
    }

    [Fact]
    public void Workflow_RunsTheTestScript_AndBuildsTheImage()
    {
        var workflow = Yaml(".github/workflows/ci.yml");
        var steps = Map(workflow, "jobs").Children.Values.SelectMany(job => (YamlSequenceNode)job["steps"]).Cast<YamlMappingNode>().ToList();

        Assert.Contains(steps, s => s.Children.TryGetValue("run", out var run) && run.ToString().Contains("bash scripts/test.sh", StringComparison.Ordinal));
        Assert.Contains(steps, s => s.Children.TryGetValue("uses", out var uses) && uses.ToString().StartsWith("docker/build-push-action@", StringComparison.Ordinal));
    }

    [Fact]
    public void ToolPackage_InstallsFromALocalFeed_AndRuns()
    {
        var configuration = typeof(PackagingTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var feed = _dir.Combine("feed");
        // A version no cache holds, so the install takes this package and not one restored earlier.
        var version = $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
        var (packExit, packOutput) = Run("dotnet", "pack", Path.Combine(Root, "src/AgentWorker/AgentWorker.csproj"), "-c", configuration, "--no-build", "-nologo",
            "-o", feed, $"-p:Version={version}");
        Assert.True(packExit == 0, packOutput);
        Assert.True(File.Exists(Path.Combine(feed, $"agent-worker.{version}.nupkg")), packOutput);

        File.WriteAllText(_dir.Combine("nuget.config"), $"""
            <configuration>
              <packageSources><clear /><add key="local" value="{feed}" /></packageSources>
            </configuration>
            """);
        var tools = _dir.Combine("tools");
        var (installExit, installOutput) = Run("dotnet", ["tool", "install", "agent-worker", "--version", version, "--tool-path", tools, "--configfile", _dir.Combine("nuget.config")], packages: _dir.Combine("packages"));
        Assert.True(installExit == 0, installOutput);

        var (helpExit, help) = Run(Path.Combine(tools, "agent-worker"), "--help");
        Assert.True(helpExit == 0, help);
        Assert.Contains("serve", help, StringComparison.Ordinal);
        Assert.Contains("--shutdown-grace", help, StringComparison.Ordinal);
    }

    private (int Exit, string Output) Run(string program, params string[] args) => Run(program, args, packages: null);

    // packages: a package folder for the run (NUGET_PACKAGES), so installs stay out of the machine's cache.
    private (int Exit, string Output) Run(string program, string[] args, string? packages)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir.Path };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        if (packages is not null)
            start.Environment["NUGET_PACKAGES"] = packages;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within 5 minutes");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    public void Dispose() => _dir.Dispose();
}
