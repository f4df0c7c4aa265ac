using System.Globalization;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>Hostile agents that go after the worker process, gain privileges or leave processes behind.</summary>
public sealed class ProcessAttackFixture : SandboxWorkerFixture
{
    /// <summary>
    /// Daemons sleep for an unusual number of seconds, so survivors can be found on the host by their argv:
    /// their pids inside the sandbox mean nothing outside it, and the workspace they could write to is deleted.
    /// </summary>
    public string TimeoutDaemon { get; } = $"31337.{Random.Shared.Next(100_000, 999_999)}";

    public string ExitDaemon { get; } = $"31338.{Random.Shared.Next(100_000, 999_999)}";

    public string Sleeper { get; } = $"31340.{Random.Shared.Next(100_000, 999_999)}";

    /// <summary>Four ways out of the agent's process group and session; the last two also drop the worker's environment tag.</summary>
    private static string SpawnDaemons(string seconds) => $$"""
        setsid sleep {{seconds}} &
        ( setsid sleep {{seconds}} & ) &
        env -i setsid nohup sleep {{seconds}} >/dev/null 2>&1 </dev/null &
        env -i setsid sh -c 'sleep {{seconds}} & exec sleep {{seconds}}' >/dev/null 2>&1 </dev/null &
        while [ "$(pgrep -c -f '^sleep {{seconds}}')" -lt 5 ]; do sleep 0.05; done
        echo "DAEMONS $(pgrep -c -f '^sleep {{seconds}}')"
        """;

    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("list-pids", """
            echo "PIDS $(ls /proc | grep -cE '^[0-9]+$')"
            if [ -e "/proc/$1" ]; then echo WORKER-VISIBLE; fi
            echo DONE
            """),
        new("kill-worker", """
            kill -9 "$1"
            echo "KILL-EXIT $?"
            kill -STOP "$1"
            echo "STOP-EXIT $?"
            echo DONE
            """),
        new("ptrace", """
            python3 - "$1" <<'EOF'
            import ctypes, os, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            libc.ptrace.restype = ctypes.c_long
            PTRACE_ATTACH, PTRACE_DETACH, WALL = 16, 17, 0x40000000
            def attach(name, pid):
                if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
                    print("ATTACHED", name, flush=True)
                    os.waitpid(pid, WALL)
                    libc.ptrace(PTRACE_DETACH, pid, None, None)
                else:
                    print("PTRACE", name, ctypes.get_errno(), flush=True)
            attach("worker", int(sys.argv[1]))
            # A process of its own: only a seccomp filter stops this one.
            child = os.fork()
            if child == 0:
                time.sleep(30)
                os._exit(0)
            attach("child", child)
            os.kill(child, 9)
            print("DONE", flush=True)
            EOF
            """),
        new("daemon-timeout", SpawnDaemons(TimeoutDaemon) + "\nsleep 60\n", TimeoutSeconds: 3),
        new("daemon-exit", SpawnDaemons(ExitDaemon) + "\nexit 0\n"),
        new("sleeper", $$"""
            exec sleep {{Sleeper}}
            """),
        new("setuid", """
            echo "UID $(id -u)"
            grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -d ' \t' | sed 's/^/STATUS /'
            su root -c 'echo "SU-UID $(id -u)"' </dev/null
            cp /usr/bin/su ./su-copy && chmod u+s ./su-copy && ./su-copy root -c 'echo "SU-UID $(id -u)"' </dev/null
            if cat /etc/shadow >/dev/null; then echo SHADOW-READ; fi
            echo DONE
            """),
        new("mount-unshare", """
            mkdir -p mnt
            if mount -t tmpfs none mnt; then echo MOUNTED; umount mnt; fi
            if unshare -r true; then echo "UNSHARED user"; fi
            if unshare -n true; then echo "UNSHARED net"; fi
            if unshare -m true; then echo "UNSHARED mount"; fi
            if unshare -p -f true; then echo "UNSHARED pid"; fi
            echo DONE
            """),
        new("seccomp", """
            python3 - <<'EOF'
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            def probe(name, number, *args):
                result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
                if result == 0 and name == "clone":
                    os._exit(0)
                errno = ctypes.get_errno() if result == -1 else 0
                print("SYSCALL", name, -1 if result == -1 else "ok", errno, flush=True)
                if result > 0 and name == "clone":
                    os.waitpid(result, 0)
                elif result > 2 and name == "io_uring_setup":
                    os.close(result)
            params = ctypes.create_string_buffer(120)
            probe("keyctl", 250, 0, -3, 0)                       # KEYCTL_GET_KEYRING_ID of the session keyring
            probe("bpf", 321, 5, 0, 0)                           # BPF_PROG_LOAD
            probe("perf_event_open", 298, 0, 0, -1, -1, 0)
            probe("io_uring_setup", 425, 1, ctypes.addressof(params))
            probe("mount", 165, 0, 0, 0, 0, 0)
            probe("unshare", 272, 0x10000000)                    # CLONE_NEWUSER
            probe("setns", 308, -1, 0)
            probe("clone", 56, 0x10000000 | 17, 0, 0, 0, 0)      # CLONE_NEWUSER | SIGCHLD
            print("DONE", flush=True)
            EOF
            """),
    ];
}

/// <summary>Process containment: a private pid namespace, no privileges, no way to touch the worker, nothing left behind.</summary>
public sealed class ProcessAttackTests(ProcessAttackFixture fixture) : IClassFixture<ProcessAttackFixture>
{
    private string WorkerPid => fixture.Worker.Pid.ToString(CultureInfo.InvariantCulture);

    [Fact]
    public async Task ListProcesses_SeesOnlyItsOwn()
    {
        var run = await fixture.RunAsync("list-pids", WorkerPid);

        run.AssertFinished();
        Assert.False(run.Printed("WORKER-VISIBLE"), run.ToString());
        // bash, the pipeline and the sandbox's init: a handful, where the host has hundreds.
        Assert.InRange(int.Parse(run.Value("PIDS")!, CultureInfo.InvariantCulture), 1, 20);
    }

    [Fact]
    public async Task KillWorker_FromInside_WorkerSurvives()
    {
        var run = await fixture.RunAsync("kill-worker", WorkerPid);

        run.AssertFinished();
        Assert.NotEqual("0", run.Value("KILL-EXIT"));
        Assert.NotEqual("0", run.Value("STOP-EXIT"));
        await fixture.AssertWorkerHealthyAsync();
    }

    [Fact]
    public async Task PtraceWorkerOrOwnChild_IsDenied_WorkerSurvives()
    {
        var run = await fixture.RunAsync("ptrace", WorkerPid);

        run.AssertFinished();
        Assert.DoesNotContain(run.Lines, l => l.StartsWith("ATTACHED", StringComparison.Ordinal));
        // The worker is not even in the agent's pid namespace (ESRCH), or ptrace is filtered (EPERM).
        Assert.Contains(run.Value("PTRACE worker"), new[] { "1", "3" });
        // Its own child exists, so only the seccomp filter can refuse: EPERM.
        Assert.Equal("1", run.Value("PTRACE child"));
        await fixture.AssertWorkerHealthyAsync();
    }

    [Fact]
    public async Task DaemonsOutlivingTheTimeout_AreAllKilled()
    {
        try
        {
            var run = await fixture.RunAsync("daemon-timeout");

            Assert.Equal("timed_out", run.State);
            Assert.Equal("5", run.Value("DAEMONS"));
            await AssertNoneLeftAsync(fixture.TimeoutDaemon);
        }
        finally
        {
            Processes.KillWithArgument(fixture.TimeoutDaemon);
        }
    }

    [Fact]
    public async Task DaemonsOfAnAgentThatExited_AreAllKilled()
    {
        try
        {
            var run = await fixture.RunAsync("daemon-exit");

            Assert.Equal("succeeded", run.State);
            Assert.Equal("5", run.Value("DAEMONS"));
            await AssertNoneLeftAsync(fixture.ExitDaemon);
        }
        finally
        {
            Processes.KillWithArgument(fixture.ExitDaemon);
        }
    }

    /// <summary>
    /// uid 65534 inside means little if it maps to the worker's root outside: the kernel then treats the agent as
    /// root for every host object it can reach (files it creates, /proc/sys, anything mounted in).
    /// </summary>
    [Fact]
    public async Task AgentProcess_IsNotRootOnTheHost()
    {
        var id = await fixture.EnqueueAsync("sleeper");
        try
        {
            var pid = (await Eventually.UntilAsync(() => Task.FromResult(Processes.WithArgument(fixture.Sleeper)), p => p.Count > 0, TimeSpan.FromSeconds(30), "the agent runs")).Single();

            var uids = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1..];
            Assert.DoesNotContain("0", uids);
        }
        finally
        {
            using var cancel = await fixture.Client.PostAsync($"/v1/jobs/{id}/cancel", null);
            Assert.Equal("cancelled", (await fixture.WaitAsync(id)).State);
        }
    }

    [Fact]
    public async Task SetuidBinaries_GiveNoPrivilege()
    {
        var run = await fixture.RunAsync("setuid");

        run.AssertFinished();
        Assert.Equal("65534", run.Value("UID"));
        var status = run.Values("STATUS").Select(s => s.Split(':')).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("1", status["NoNewPrivs"]);
        foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" })
            Assert.True(status[set] == "0000000000000000", $"{set} = {status[set]}");
        Assert.DoesNotContain("0", run.Values("SU-UID"));
        Assert.False(run.Printed("SHADOW-READ"), run.ToString());
    }

    [Fact]
    public async Task MountAndUnshareInside_Fail()
    {
        var run = await fixture.RunAsync("mount-unshare");

        run.AssertFinished();
        Assert.False(run.Printed("MOUNTED"), run.ToString());
        Assert.Empty(run.Values("UNSHARED"));
    }

    [Fact]
    public async Task DangerousSyscalls_AreDeniedWithEperm()
    {
        var run = await fixture.RunAsync("seccomp");

        run.AssertFinished();
        var results = run.Values("SYSCALL").Select(v => v.Split(' ')).ToDictionary(p => p[0], p => $"{p[1]} errno {p[2]}");
        Assert.Equal(8, results.Count);
        Assert.All(results, r => Assert.True(r.Value == "-1 errno 1", $"{r.Key}: {r.Value}"));
    }

    /// <summary>The job's state is recorded after the kill; allow a moment for the kernel to finish tearing the namespace down.</summary>
    private static Task AssertNoneLeftAsync(string seconds) =>
        Eventually.UntilAsync(() => Processes.WithArgument(seconds).Count == 0, TimeSpan.FromSeconds(2), $"every 'sleep {seconds}' daemon killed with the job");
}
