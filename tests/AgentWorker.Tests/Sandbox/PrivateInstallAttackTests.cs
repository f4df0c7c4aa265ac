namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// The worker installed in a directory the sandbox user cannot read (mode 700, as under /root), with its state
/// beside the binary (the default data dir ./.agent-worker when started from there). The sandbox then shows
/// agents a readable copy of the install, which must carry none of that state.
/// </summary>
public sealed class PrivateInstallFixture : SandboxWorkerFixture
{
    /// <summary>Where the sandbox keeps readable copies of private installs (docs/sandbox.md).</summary>
    public const string CopyRoot = "/var/lib/agent-worker";

    public string Install => Dir.Combine("private", "app");

    /// <summary>A file in the install that identifies its copies under <see cref="CopyRoot"/>.</summary>
    public string Tag => $"aw-install-{Nonce}";

    protected override string WorkerExecutable => Path.Combine(Install, "agent-worker");

    public override string DataDir => Path.Combine(Install, ".agent-worker", "data");

    public override string AgentsFile => Path.Combine(Install, ".agent-worker", "agents.yaml");

    /// <summary>Copies of this fixture's install the worker made for the sandbox.</summary>
    public IReadOnlyList<string> Copies =>
        Directory.Exists(CopyRoot) ? [.. Directory.EnumerateDirectories(CopyRoot).Where(d => File.Exists(Path.Combine(d, Tag)))] : [];

    protected override Task PrepareAsync()
    {
        var source = AppContext.BaseDirectory.TrimEnd('/');
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            // Other fixtures keep their state in the build output; it is not part of the install.
            if (relative.StartsWith("aw-state-", StringComparison.Ordinal))
                continue;
            var copy = Path.Combine(Install, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, File.GetUnixFileMode(file));
        }
        File.WriteAllText(Path.Combine(Install, Tag), "");
        File.SetUnixFileMode(Dir.Combine("private"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return Task.CompletedTask;
    }

    protected override ValueTask ReleaseAsync()
    {
        foreach (var copy in Copies)
            Directory.Delete(copy, recursive: true);
        return ValueTask.CompletedTask;
    }

    protected override IEnumerable<HostileAgent> Agents => [WorkerStateProbe.Agent(this)];
}

/// <summary>State kept beside a private install stays out of the sandbox and out of the copy made for it.</summary>
public sealed class PrivateInstallAttackTests(PrivateInstallFixture fixture) : IClassFixture<PrivateInstallFixture>
{
    [Fact]
    public async Task ReadWorkerStateBesideAPrivateInstall_NotPresent()
    {
        var run = await fixture.RunAsync(WorkerStateProbe.Id);

        WorkerStateProbe.AssertNothingSeen(run);
    }

    [Fact]
    public async Task CopyOfAPrivateInstall_HoldsNoWorkerState()
    {
        // A built-in agent runs from the install, so it needs the copy: this run proves the copy exists and works.
        var run = await fixture.RunAsync("ssot_auditor");

        Assert.True(run.State == "succeeded", run.ToString());
        var copy = Assert.Single(fixture.Copies);
        // World-readable on the host: the queue database and the agents file must not be in it.
        Assert.False(Directory.Exists(Path.Combine(copy, ".agent-worker")), $"{copy}/.agent-worker holds the worker's state, readable by any local user");
    }
}
