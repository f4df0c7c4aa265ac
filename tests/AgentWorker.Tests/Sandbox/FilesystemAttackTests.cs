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

    protected override void ShapeRepository(TestRepository repository)
    {
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
        new("read-home", $$"""
            for d in /root "{{HostHome}}"; do
              if ls -A "$d" >/dev/null 2>&1; then ls -A "$d" | sed 's/^/HOME-ENTRY /'; echo "HOME-LISTED $d"; fi
            done
            if [ -d /run ]; then ls -A /run | sed 's/^/RUN /'; fi
            echo DONE
            """),
        // A directory covered by an empty tmpfs may list fine; only its entries would be a leak.
        new("read-worker-files", $$"""
            if grep -q read-worker-files "{{AgentsFile}}"; then echo AGENTS-READ; fi
            ls -A "{{DataDir}}" | sed 's/^/DATA-ENTRY /'
            if head -c 15 "{{DataDir}}/queue.db" | grep -q SQLite; then echo QUEUE-READ; fi
            ls -A "{{WorkDir}}" | sed 's/^/WORKDIR-ENTRY /'
            echo DONE
            """),
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
        var run = await fixture.RunAsync("read-worker-files");

        run.AssertFinished();
        Assert.False(run.Printed("AGENTS-READ"), run.ToString());
        Assert.Empty(run.Values("DATA-ENTRY"));
        Assert.False(run.Printed("QUEUE-READ"), run.ToString());
        Assert.Empty(run.Values("WORKDIR-ENTRY"));
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
