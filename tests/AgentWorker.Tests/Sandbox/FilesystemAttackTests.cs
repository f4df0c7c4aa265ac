using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents that read host secrets and write outside their workspace.</summary>
public sealed class FilesystemAttackFixture : SandboxWorkerFixture
{
    /// <summary>A host file anyone may read and write, reachable from the repository through a committed symlink.</summary>
    public string HostFile => Dir.Combine("host-secret.txt");

    public string HostFileContent => $"host-secret-{Nonce}";

    public static string HostHome => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>
    /// The worker's state sits beside its binary, as with the default data dir (./.agent-worker) run from the
    /// install directory: the sandbox shows that directory to built-in agents, so it must cover the state up.
    /// </summary>
    public string StateBesideBinary => Path.Combine(AppContext.BaseDirectory, $"aw-state-{Nonce}");

    public override string DataDir => Path.Combine(StateBesideBinary, "data");

    public override string AgentsFile => Path.Combine(StateBesideBinary, "agents.yaml");

    protected override ValueTask ReleaseAsync()
    {
        if (Directory.Exists(StateBesideBinary))
            Directory.Delete(StateBesideBinary, recursive: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>Host system directories (those not bound read-only may exist inside as the sandbox's own empty directories).</summary>
    public static IReadOnlyList<string> SystemDirectories => ["/usr", "/usr/bin", "/usr/lib", "/bin", "/etc", "/var", "/var/tmp", "/opt"];

    /// <summary>A host directory with a file the worker's cleanup must not delete through a workspace symlink.</summary>
    public string VictimDir => Dir.Combine("victim");

    public string CrossJobSecret => $"cross-job-{Nonce}";

    protected override void ShapeRepository(TestRepository repository)
    {
        Directory.CreateDirectory(VictimDir);
        File.WriteAllText(Path.Combine(VictimDir, "keep.txt"), "keep\n");
        File.WriteAllText(HostFile, HostFileContent + "\n");
        File.SetUnixFileMode(HostFile, (UnixFileMode)0x1B6);
        File.CreateSymbolicLink(Path.Combine(repository.Path, "host-file"), HostFile);
        File.CreateSymbolicLink(Path.Combine(repository.Path, "host-dir"), HostDir);
        repository.Commit(new Dictionary<string, string>(), "links to the host");
    }

    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("read-shadow", """
            if cat /etc/shadow; then echo SHADOW-READ; fi
            echo DONE
            """),
        new("read-passwd", """
            cut -d: -f1 /etc/passwd | sed 's/^/USER /'
            echo DONE
            """),
        new("read-home", $$"""
            for d in /root "{{HostHome}}"; do
              if ls -A "$d" >/dev/null 2>&1; then ls -A "$d" | sed 's/^/HOME-ENTRY /'; echo "HOME-LISTED $d"; fi
            done
            if [ -d /run ]; then ls -A /run | sed 's/^/RUN /'; fi
            echo DONE
            """),
        WorkerStateProbe.Agent(this),
        new("write-outside", $$"""
            mkdir -p "{{HostDir}}"
            echo pwned > "../../../../../../../../../..{{HostDir}}/dotdot" && echo "WROTE dotdot"
            echo pwned > "{{HostDir}}/absolute" && echo "WROTE absolute"
            ln -s "{{HostDir}}" hostlink && echo pwned > hostlink/symlink && echo "WROTE symlink"
            echo pwned > "/proc/self/root{{HostDir}}/procroot" && echo "WROTE procroot"
            echo pwned > "/proc/1/root{{HostDir}}/proc1root" && echo "WROTE proc1root"
            for up in .. ../.. ../../.. ../../../..; do echo pwned > "$up/escape-{{Nonce}}" && echo "WROTE $up"; done
            echo DONE
            """),
        new("follow-repo-links", """
            echo "LINK-TARGET $(readlink host-file)"
            if cat host-file; then echo LINK-READ; fi
            if echo pwned >> host-file; then echo LINK-APPENDED; fi
            if echo pwned > host-dir/via-repo-link; then echo LINK-DIR-WRITTEN; fi
            echo DONE
            """),
        // Probes are left in place: the test looks for them on the host (and removes them if the sandbox failed).
        new("system-dirs", $$"""
            for d in {{string.Join(' ', SystemDirectories)}}; do
              if touch "$d/aw-probe-{{Nonce}}"; then echo "WRITABLE $d"; fi
            done
            echo DONE
            """),
        // Links that resolve on the host only: the worker removes and measures the workspace there, as root.
        new("link-host-paths", $$"""
            ln -s / rootlink
            ln -s "{{VictimDir}}" victimlink
            ln -s "{{VictimDir}}/keep.txt" victimfile
            mkdir -p deep/a && ln -s "{{VictimDir}}" deep/a/loop && ln -s ../.. deep/a/up
            echo DONE
            """),
        // Holds a secret in its workspace until cancelled.
        new("hold-secret", $$"""
            echo "{{CrossJobSecret}}" > {{CrossJobSecret}}
            sleep 60
            """),
        new("find-other-jobs", $$"""
            for f in /workspace/../*/{{CrossJobSecret}} /workspace/../../*/*/{{CrossJobSecret}} "{{WorkDir}}"/*/repo/{{CrossJobSecret}} /proc/*/cwd/{{CrossJobSecret}} /proc/*/root/workspace/{{CrossJobSecret}} /tmp/{{CrossJobSecret}}; do
              if [ -e "$f" ]; then echo "FOUND $f"; cat "$f"; fi
            done
            echo DONE
            """),
        // Only access(2) and writes of the value already there: a missing protection must not retune the host.
        new("write-sysctls", """
            for f in $1; do
              if [ -w "$f" ]; then echo "WRITABLE $f"; fi
            done
            v=$(cat /proc/sys/vm/overcommit_memory)
            if (echo "$v" > /proc/sys/vm/overcommit_memory) 2>/dev/null; then echo "WROTE /proc/sys/vm/overcommit_memory"; fi
            echo DONE
            """),
        // Leaves a setuid copy in its workspace and waits: on the host, the file is owned by whoever the agent's uid maps to.
        new("setuid-in-workspace", """
            cp /usr/bin/id ./id-suid && chmod 4755 ./id-suid && echo SUID-SET
            sleep 60
            """),
        new("list-dev", """
            ls -A /dev | sed 's/^/DEV /'
            echo DONE
            """),
        new("use-workspace", """
            echo "PWD $(pwd)"
            echo "HOME $HOME"
            echo "WORKSPACE $AGENT_WORKER_WORKSPACE"
            echo data > written.txt && echo "READBACK $(cat written.txt)"
            echo h > "$HOME/h" && echo HOME-WRITABLE
            echo t > /tmp/t && echo TMP-WRITABLE
            [ -f README.md ] && echo CHECKED-OUT
            echo DONE
            """),
    ];
}

/// <summary>Filesystem containment: nothing of the host is readable or writable except the job's own workspace.</summary>
public sealed class FilesystemAttackTests(FilesystemAttackFixture fixture) : IClassFixture<FilesystemAttackFixture>
{
    [Fact]
    public async Task ReadShadow_AsRoot_IsDenied()
    {
        var run = await fixture.RunAsync("read-shadow");

        run.AssertFinished();
        Assert.False(run.Printed("SHADOW-READ"), run.ToString());
        // The host's own first shadow line must not be in the log, whatever the script claims.
        var hostShadow = File.ReadLines("/etc/shadow").First();
        Assert.DoesNotContain(hostShadow, run.Lines);
    }

    [Fact]
    public async Task ReadPasswd_SeesOnlyTheStub()
    {
        var run = await fixture.RunAsync("read-passwd");

        run.AssertFinished();
        Assert.NotEmpty(run.Values("USER"));
        Assert.All(run.Values("USER"), user => Assert.Contains(user, new[] { "root", "agent", "nobody" }));
    }

    [Fact]
    public async Task ListHostHomeAndRun_NothingVisible()
    {
        var run = await fixture.RunAsync("read-home");

        run.AssertFinished();
        Assert.Empty(run.Values("HOME-LISTED"));
        var hostRun = Directory.Exists("/run") ? Directory.EnumerateFileSystemEntries("/run").Select(Path.GetFileName).ToHashSet() : [];
        Assert.DoesNotContain(run.Values("RUN"), hostRun.Contains);
    }

    [Fact]
    public async Task ReadWorkerConfigAndData_NotPresent()
    {
        var run = await fixture.RunAsync(WorkerStateProbe.Id);

        WorkerStateProbe.AssertNothingSeen(run);
    }

    [Fact]
    public async Task WriteOutsideWorkspace_ThroughDotDotAbsoluteSymlinkAndProcRoot_NeverReachesTheHost()
    {
        var escapes = new[] { fixture.WorkDir, fixture.Dir.Path, "/var/tmp", "/var" }.Select(d => Path.Combine(d, $"escape-{fixture.Nonce}")).ToList();
        try
        {
            var run = await fixture.RunAsync("write-outside");

            run.AssertFinished();
            Assert.Empty(Directory.EnumerateFileSystemEntries(fixture.HostDir));
            Assert.Empty(Directory.EnumerateFiles(fixture.Dir.Path, $"escape-{fixture.Nonce}", SearchOption.AllDirectories));
            Assert.All(escapes, path => Assert.False(File.Exists(path), $"{path} written from inside the sandbox"));
        }
        finally
        {
            escapes.ForEach(File.Delete);
        }
    }

    [Fact]
    public async Task RepositorySymlinkToHostFile_ReadAndWriteDoNotReachIt()
    {
        var run = await fixture.RunAsync("follow-repo-links");

        run.AssertFinished();
        // The clone did carry the links; only the sandbox stands between them and the host.
        Assert.Equal(fixture.HostFile, run.Value("LINK-TARGET"));
        Assert.False(run.Printed("LINK-READ"), run.ToString());
        Assert.DoesNotContain(run.Lines, l => l.Contains(fixture.HostFileContent, StringComparison.Ordinal));
        Assert.Equal(fixture.HostFileContent + "\n", File.ReadAllText(fixture.HostFile));
        Assert.False(File.Exists(Path.Combine(fixture.HostDir, "via-repo-link")));
    }

    [Fact]
    public async Task WorkspaceSymlinksToHostPaths_AreNotFollowedByCleanupOrChecks()
    {
        var run = await fixture.RunAsync("link-host-paths");

        run.AssertFinished();
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(fixture.VictimDir, "keep.txt")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(fixture.WorkDir));
        // The post-run size check must measure the workspace, not the host's / behind a link.
        Assert.True(run.State == "succeeded", run.ToString());
    }

    [Fact]
    public async Task ReadAnotherRunningJobsWorkspace_NotVisible()
    {
        var holder = await fixture.EnqueueAsync("hold-secret");
        await Eventually.UntilAsync(
            () => Directory.Exists(fixture.WorkDir) && Directory.EnumerateFiles(fixture.WorkDir, fixture.CrossJobSecret, SearchOption.AllDirectories).Any(),
            TimeSpan.FromSeconds(30), "the other job wrote its secret");
        try
        {
            var run = await fixture.RunAsync("find-other-jobs");

            run.AssertFinished();
            Assert.Empty(run.Values("FOUND"));
            Assert.DoesNotContain(fixture.CrossJobSecret, run.Lines);
        }
        finally
        {
            using var cancel = await fixture.Client.PostAsync($"/v1/jobs/{holder}/cancel", null);
            Assert.Equal("cancelled", (await fixture.WaitAsync(holder)).State);
        }
    }

    [Fact]
    public async Task WriteSystemDirectories_AsRoot_NeverReachesTheHost()
    {
        var probes = FilesystemAttackFixture.SystemDirectories.Select(d => Path.Combine(d, $"aw-probe-{fixture.Nonce}")).ToList();
        try
        {
            var run = await fixture.RunAsync("system-dirs");

            run.AssertFinished();
            Assert.All(probes, probe => Assert.False(File.Exists(probe), $"{probe} written from inside the sandbox"));
            // The host's /usr is mounted in, so it must be read-only there too.
            Assert.DoesNotContain("/usr", run.Values("WRITABLE"));
            Assert.DoesNotContain("/usr/bin", run.Values("WRITABLE"));
        }
        finally
        {
            probes.ForEach(File.Delete);
        }
    }

    /// <summary>
    /// Kernel settings that are global to the host (core_pattern and modprobe name programs the kernel runs as
    /// root); with the host network, the host's network settings too.
    /// </summary>
    [Theory]
    [InlineData("none", "/proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe /proc/sys/vm/overcommit_memory /proc/sys/vm/stat_interval /proc/sys/fs/file-max /proc/sysrq-trigger")]
    [InlineData("full", "/proc/sys/kernel/core_pattern /proc/sys/net/ipv4/ip_forward /proc/sys/net/core/somaxconn")]
    public async Task WriteHostKernelSettingsThroughProcSys_IsDenied(string network, string settings)
    {
        var run = await fixture.RunAsync("write-sysctls", settings, network);

        run.AssertFinished();
        Assert.Empty(run.Values("WRITABLE"));
        Assert.Empty(run.Values("WROTE"));
    }

    [Fact]
    public async Task SetuidFileInWorkspace_IsNotSetuidRootOnTheHost()
    {
        var id = await fixture.EnqueueAsync("setuid-in-workspace");
        try
        {
            var file = await Eventually.UntilAsync(
                () => Task.FromResult(Directory.Exists(fixture.WorkDir) ? Directory.EnumerateFiles(fixture.WorkDir, "id-suid", SearchOption.AllDirectories).FirstOrDefault() : null),
                f => f is not null && (File.GetUnixFileMode(f) & UnixFileMode.SetUser) != 0,
                TimeSpan.FromSeconds(30), "the agent made its setuid copy");

            // Any local user who can reach the workspace could run it; it must not be a root one.
            Assert.NotEqual("0", HostOwner(file!));
        }
        finally
        {
            using var cancel = await fixture.Client.PostAsync($"/v1/jobs/{id}/cancel", null);
            Assert.Equal("cancelled", (await fixture.WaitAsync(id)).State);
        }
    }

    private static string HostOwner(string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        var owner = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return owner;
    }

    [Fact]
    public async Task ListDev_ShowsNoHostDevices()
    {
        var run = await fixture.RunAsync("list-dev");

        run.AssertFinished();
        var devices = run.Values("DEV");
        Assert.Contains("null", devices);
        var hostBlockDevices = Directory.EnumerateFileSystemEntries("/sys/block").Select(Path.GetFileName).ToHashSet();
        Assert.DoesNotContain(devices, d => hostBlockDevices.Contains(d) || d is "mem" or "kmem" or "port" or "kmsg");
    }

    [Fact]
    public async Task Workspace_IsTheWritableCwdAtAFixedPath_WithPrivateHomeAndTmp()
    {
        var run = await fixture.RunAsync("use-workspace");

        Assert.Equal("succeeded", run.State);
        run.AssertFinished();
        Assert.Equal("/workspace", run.Value("PWD"));
        Assert.Equal("/workspace", run.Value("WORKSPACE"));
        Assert.Equal("/home/agent", run.Value("HOME"));
        Assert.Equal("data", run.Value("READBACK"));
        Assert.True(run.Printed("HOME-WRITABLE") && run.Printed("TMP-WRITABLE") && run.Printed("CHECKED-OUT"), run.ToString());
    }
}
