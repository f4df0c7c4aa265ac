using System.Globalization;

using AgentWorker.Core.Execution;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// Per-run control groups for memory, pids and CPU: cgroup v2 when the unified hierarchy delegates those
/// controllers to this process, else cgroup v1 (one hierarchy per controller). Each run gets its own group
/// under the worker's own, so killing the group kills every process of the run, daemons included.
/// </summary>
public sealed class Cgroups
{
    private const string Root = "/sys/fs/cgroup";
    private static readonly string[] V1Controllers = ["memory", "pids", "cpu", "cpuacct"];

    private Cgroups(int version, IReadOnlyDictionary<string, string> parents, string? problem)
    {
        Version = version;
        _parents = parents;
        Problem = problem;
    }

    private readonly IReadOnlyDictionary<string, string> _parents;

    /// <summary>2, 1, or 0 when no usable cgroup hierarchy was found.</summary>
    public int Version { get; }

    /// <summary>Why limits cannot be enforced, when <see cref="Version"/> is 0.</summary>
    public string? Problem { get; }

    /// <summary>Controllers a run's group gets, e.g. memory, pids, cpu.</summary>
    public IEnumerable<string> Controllers => _parents.Keys;

    /// <summary>Finds a hierarchy this process may create groups in.</summary>
    public static Cgroups Detect()
    {
        var own = File.Exists("/proc/self/cgroup") ? File.ReadAllLines("/proc/self/cgroup") : [];
        var unifiedPath = own.Select(l => l.Split(':', 3)).FirstOrDefault(p => p.Length == 3 && p[0] == "0")?[2];
        foreach (var mount in new[] { Root, Path.Combine(Root, "unified") })
        {
            if (unifiedPath is null || !File.Exists(Path.Combine(mount, "cgroup.controllers")))
                continue;
            var parent = Path.Combine(mount, unifiedPath.TrimStart('/'), "agent-worker");
            var available = File.ReadAllText(Path.Combine(mount, unifiedPath.TrimStart('/'), "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (new[] { "memory", "pids", "cpu" }.All(available.Contains) && TryPrepareV2(parent))
                return new Cgroups(2, new Dictionary<string, string> { ["unified"] = parent }, null);
        }

        var parents = new Dictionary<string, string>();
        foreach (var controller in V1Controllers)
        {
            var line = own.Select(l => l.Split(':', 3)).FirstOrDefault(p => p.Length == 3 && p[1].Split(',').Contains(controller));
            var mount = Path.Combine(Root, controller);
            if (line is null || !File.Exists(Path.Combine(mount, "cgroup.procs")))
                continue;
            var parent = Path.Combine(mount, line[2].TrimStart('/'), "agent-worker");
            try
            {
                // An existing parent proves nothing for a non-root worker: make and remove a group to know.
                var probe = Path.Combine(parent, $"probe-{Environment.ProcessId}");
                Directory.CreateDirectory(probe);
                Directory.Delete(probe);
                parents[controller] = parent;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not delegated to us; this controller is unavailable.
            }
        }
        return parents.ContainsKey("memory") && parents.ContainsKey("pids")
            ? new Cgroups(1, parents, null)
            : new Cgroups(0, new Dictionary<string, string>(), "no writable cgroup hierarchy with the memory and pids controllers (run as root or delegate a cgroup v2 subtree)");
    }

    /// <summary>
    /// Removes run groups left by workers that died (a group is only removable once empty). Groups younger than
    /// <paramref name="minimumAge"/> are left alone: a live worker may be about to move its run in.
    /// </summary>
    public int SweepEmpty(TimeSpan minimumAge)
    {
        var removed = 0;
        foreach (var parent in _parents.Values)
        {
            foreach (var group in Directory.EnumerateDirectories(parent))
            {
                try
                {
                    if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(group) < minimumAge)
                        continue;
                    Directory.Delete(group);
                    removed++;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Still has processes (a live run), or already gone.
                }
            }
        }
        return removed;
    }

    /// <summary>Creates the group of one run with its limits. The caller moves the run's first process in through <see cref="RunGroup.ProcsFiles"/>.</summary>
    public RunGroup Create(string runId, SandboxLimits limits)
    {
        var dirs = _parents.ToDictionary(p => p.Key, p => Path.Combine(p.Value, runId));
        foreach (var dir in dirs.Values)
            Directory.CreateDirectory(dir);
        var group = new RunGroup(Version, dirs);
        if (Version == 2)
        {
            var dir = dirs["unified"];
            Write(dir, "memory.max", limits.MemoryBytes);
            TryWrite(dir, "memory.swap.max", "0");
            Write(dir, "pids.max", limits.Pids);
            Write(dir, "cpu.max", $"{(long)(limits.Cpus * 100_000)} 100000");
        }
        else if (Version == 1)
        {
            Write(dirs["memory"], "memory.limit_in_bytes", limits.MemoryBytes);
            // Without this the limit only covers RAM and the run can go on in swap.
            TryWrite(dirs["memory"], "memory.memsw.limit_in_bytes", limits.MemoryBytes.ToString(CultureInfo.InvariantCulture));
            Write(dirs["pids"], "pids.max", limits.Pids);
            if (dirs.TryGetValue("cpu", out var cpu))
            {
                Write(cpu, "cpu.cfs_period_us", 100_000);
                Write(cpu, "cpu.cfs_quota_us", (long)(limits.Cpus * 100_000));
            }
        }
        return group;
    }

    private static bool TryPrepareV2(string parent)
    {
        try
        {
            Directory.CreateDirectory(parent);
            // Controllers must be enabled on the way down before a child group can use them.
            File.WriteAllText(Path.Combine(Path.GetDirectoryName(parent)!, "cgroup.subtree_control"), "+memory +pids +cpu");
            File.WriteAllText(Path.Combine(parent, "cgroup.subtree_control"), "+memory +pids +cpu");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Write(string dir, string file, long value) => Write(dir, file, value.ToString(CultureInfo.InvariantCulture));

    private static void Write(string dir, string file, string value) => File.WriteAllText(Path.Combine(dir, file), value);

    private static void TryWrite(string dir, string file, string value)
    {
        try
        {
            Write(dir, file, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Optional knob (swap accounting may be off).
        }
    }
}

/// <summary>The control group(s) of one run.</summary>
public sealed class RunGroup(int version, IReadOnlyDictionary<string, string> dirs) : IDisposable
{
    /// <summary>The cgroup.procs files listing the run's processes.</summary>
    public IReadOnlyList<string> ProcsFiles { get; } = [.. dirs.Values.Select(d => Path.Combine(d, "cgroup.procs"))];

    /// <summary>
    /// The files the run's first process (single-threaded) writes <c>0</c> into, moving itself in before it starts the agent.
    /// On cgroup v1 that is <c>tasks</c>: moving the writing thread itself skips the kernel's global threadgroup lock, whose
    /// RCU grace period made writing a pid to cgroup.procs cost about 12 ms a run here. cgroup v2 only takes whole processes.
    /// </summary>
    public IReadOnlyList<string> JoinFiles { get; } = [.. dirs.Values.Select(d => Path.Combine(d, version == 1 ? "tasks" : "cgroup.procs"))];

    /// <summary>SIGKILLs every process in the group until it is empty.</summary>
    public void KillAll()
    {
        if (version == 2 && File.Exists(Path.Combine(dirs["unified"], "cgroup.kill")))
            TryWrite(Path.Combine(dirs["unified"], "cgroup.kill"), "1");
        for (var round = 0; round < 50; round++)
        {
            var pids = Pids();
            if (pids.Count == 0)
                return;
            foreach (var pid in pids)
                ProcessSignals.Kill(pid);
        }
    }

    public ResourceUsage ReadUsage()
    {
        if (version == 2)
        {
            var dir = dirs["unified"];
            return new ResourceUsage(
                ReadLong(dir, "memory.peak"),
                ReadKey(dir, "cpu.stat", "usage_usec") is { } usec ? usec / 1e6 : null,
                ReadKey(dir, "memory.events", "oom_kill") > 0,
                ReadKey(dir, "pids.events", "max") > 0);
        }
        return new ResourceUsage(
            ReadLong(dirs["memory"], "memory.max_usage_in_bytes"),
            dirs.TryGetValue("cpuacct", out var cpuacct) && ReadLong(cpuacct, "cpuacct.usage") is { } ns ? ns / 1e9 : null,
            ReadKey(dirs["memory"], "memory.oom_control", "oom_kill") > 0,
            ReadKey(dirs["pids"], "pids.events", "max") > 0);
    }

    public void Dispose()
    {
        KillAll();
        foreach (var dir in dirs.Values)
        {
            // A just-killed process can take a moment to leave; the group is removed once it is empty.
            for (var attempt = 0; attempt < 100; attempt++)
            {
                try
                {
                    Directory.Delete(dir);
                    break;
                }
                catch (IOException) when (Directory.Exists(dir))
                {
                    Thread.Sleep(10);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    break;
                }
            }
        }
    }

    private List<int> Pids()
    {
        var pids = new HashSet<int>();
        foreach (var file in ProcsFiles)
        {
            try
            {
                foreach (var line in File.ReadAllLines(file))
                {
                    if (int.TryParse(line, out var pid))
                        pids.Add(pid);
                }
            }
            catch (IOException)
            {
                // Group already gone.
            }
        }
        return [.. pids];
    }

    private static long? ReadLong(string dir, string file)
    {
        try
        {
            return long.TryParse(File.ReadAllText(Path.Combine(dir, file)).Trim(), out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static long? ReadKey(string dir, string file, string key)
    {
        try
        {
            foreach (var line in File.ReadAllLines(Path.Combine(dir, file)))
            {
                var parts = line.Split(' ');
                if (parts.Length == 2 && parts[0] == key && long.TryParse(parts[1], out var value))
                    return value;
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    private static void TryWrite(string path, string value)
    {
        try
        {
            File.WriteAllText(path, value);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>What a run used, read from its control group. <paramref name="PidsLimitHit"/>: a fork failed at the pids limit.</summary>
public sealed record ResourceUsage(long? PeakMemoryBytes, double? CpuSeconds, bool OutOfMemoryKilled, bool PidsLimitHit = false);
