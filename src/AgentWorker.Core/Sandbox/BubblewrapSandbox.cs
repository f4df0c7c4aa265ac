using System.Globalization;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// Runs agents under bubblewrap: new user (uid 65534, no capabilities even for a root worker), pid, ipc, uts,
/// cgroup and network namespaces (the network one holds only <c>lo</c> and the ports of the run's <see cref="RunNetwork"/>); read-only system directories;
/// the workspace as the only writable host tree at <c>/workspace</c>; private size-capped <c>/tmp</c>, private
/// <c>/proc</c>, minimal <c>/dev</c>; no_new_privs, a seccomp filter, a new session, death with the worker.
/// The launcher joins the run's control groups and sets rlimits before bubblewrap starts, so every process
/// of the run is limited and can be killed as a group.
/// </summary>
public sealed class BubblewrapSandbox : ISandbox
{
    public const string InsideWorkspace = "/workspace";
    public const string InsideHome = "/home/agent";
    public const string InsideArtifacts = "/artifacts";
    public const int InsideUid = 65534;

    // Sets the rlimits (hard and soft, with the shell's builtin: one exec less than prlimit), moves itself into the
    // control groups named before "--" (0 names the writer), then runs the rest with the seccomp program open as fd 3.
    private const string Launcher = """
        ulimit -n "$1" && ulimit -f "$2" && ulimit -c 0 || { echo "agent-worker sandbox: cannot set rlimits" >&2; exit 125; }
        [ -z "$3" ] || ulimit -p "$3" || exit 125
        shift 3
        bpf="$1"; shift
        while [ "$1" != "--" ]; do
          echo 0 > "$1" || { echo "agent-worker sandbox: cannot join control group $1" >&2; exit 125; }
          shift
        done
        shift
        exec "$@" 3< "$bpf"
        """;

    internal const string Hosts = "127.0.0.1 localhost\n::1 localhost\n";

    private static readonly string[] TopLevelSystemPaths = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

    private readonly SandboxOptions _options;
    private readonly Cgroups _cgroups;
    private readonly string _bwrap;
    private readonly string _seccompFile;
    private readonly IReadOnlyList<(string Source, string Target)> _readOnlyExtras;
    private readonly IReadOnlyList<string> _selfCommand;
    private readonly SandboxEtc _etc;
    private readonly bool _ownNamespace;

    // A root worker hands the agent to an unprivileged host user before bubblewrap starts: the process runner starts
    // the launcher as that user (one exec less than setpriv) when the user has a name and the launcher may join the
    // run's cgroup v1 groups itself; cgroup v2 only lets the launcher in while it is still root, so setpriv drops there.
    private readonly int? _dropTo;
    private readonly string? _launchAs;

    /// <param name="options">Kind, default limits and the paths to hide.</param>
    /// <param name="cgroups">Where each run gets its control groups (version 0: limits by rlimits only).</param>
    /// <param name="readOnlyExtras">Host directories agents need read-only besides the system (the worker's own binaries, for built-in agents).</param>
    /// <param name="selfCommand">How to run this binary inside the sandbox (the network relay is <c>agent-worker sandbox forward</c>).</param>
    /// <param name="ownNetworkNamespace">
    /// True: the worker builds each run's network namespace with its ports in it (needs CAP_SYS_ADMIN); false: bubblewrap builds
    /// it and a relay inside forwards the ports. Null: the former when the worker may.
    /// </param>
    public BubblewrapSandbox(SandboxOptions options, Cgroups cgroups, IReadOnlyList<string> readOnlyExtras, IReadOnlyList<string> selfCommand, bool? ownNetworkNamespace = null)
    {
        _ownNamespace = ownNetworkNamespace ?? NetworkNamespace.CanCreate;
        _options = options;
        _cgroups = cgroups;
        _selfCommand = selfCommand;
        _dropTo = Environment.IsPrivilegedProcess ? options.HostUid : null;
        _launchAs = _dropTo is { } dropTo && cgroups.Version != 2 ? HostFiles.UserName(dropTo) : null;
        cgroups.SweepEmpty(TimeSpan.FromMinutes(1));
        _readOnlyExtras = [.. readOnlyExtras
            .Where(p => !p.StartsWith("/usr/", StringComparison.Ordinal))
            .Select(p => (_dropTo is { } uid ? HostFiles.ReadableCopy(p, uid, options.HiddenPaths) : p, p))];
        _bwrap = Find("bwrap") ?? throw new SandboxException("bubblewrap (bwrap) is not installed: apt-get install bubblewrap, or run with --sandbox none (no isolation)");
        Directory.CreateDirectory(options.StateDir);
        var seccompFile = Path.Combine(options.StateDir, "seccomp.bpf");
        try
        {
            SeccompFilter.Write(seccompFile);
            // The launcher opens the filter; started as the sandbox user it cannot reach a private state dir.
            _seccompFile = _launchAs is null ? seccompFile : HostFiles.PublicCopy(seccompFile);
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException)
        {
            throw new SandboxException($"cannot build the seccomp filter ({e.Message}): apt-get install libseccomp2, or run with --sandbox none (no isolation)");
        }
        // bubblewrap opens it after the launcher dropped to the sandbox user: a root worker's copy is world-readable.
        _etc = new SandboxEtc(_dropTo is null ? options.StateDir : null);
        _etc.Current();
    }

    public string Name => SandboxOptions.Bubblewrap;

    public Cgroups Cgroups => _cgroups;

    public SandboxRun Prepare(SandboxRequest request)
    {
        Directory.CreateDirectory(request.Scratch);
        RunGroup? group = null;
        RunNetwork? network = null;
        try
        {
            group = _cgroups.Version > 0 ? _cgroups.Create(request.RunId, request.Limits) : null;
            if (_launchAs is not null && _dropTo is { } joiner)
            {
                foreach (var join in group?.JoinFiles ?? [])
                    HostFiles.Chown(join, joiner);
            }
            if (request.Network == NetworkMode.McpOnly && request.McpUrl is null)
                throw new SandboxException("network mcp_only needs an MCP URL");
            if (request.Network is NetworkMode.Allowlist or NetworkMode.Full && request.Egress is null)
                throw new SandboxException($"network {request.Network.Name()} needs the egress proxy");
            network = RunNetwork.Start(request, _ownNamespace);
            if (network?.McpHost is { } mcpHost)
                File.WriteAllText(Path.Combine(request.Scratch, "hosts"), $"{Hosts}127.0.0.1 {mcpHost}\n");
            var etc = _etc.Current();
            if (_dropTo is { } uid)
            {
                HostFiles.ChangeOwner(request.Workspace, uid);
                HostFiles.ChangeOwner(request.Home, uid);
                if (request.Artifacts is { } artifacts && !IsUnder(artifacts, request.Workspace))
                    HostFiles.ChangeOwner(artifacts, uid);
            }
            return new Run(this, request, group, network, etc);
        }
        catch (Exception e)
        {
            group?.Dispose();
            network?.Dispose();
            throw e as SandboxException ?? new SandboxException($"cannot set up the sandbox: {e.Message}");
        }
    }

    private List<string> BubblewrapArguments(SandboxRequest request, RunNetwork? network, string etc)
    {
        List<string> args =
        [
            "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--uid", InsideUid.ToString(CultureInfo.InvariantCulture), "--gid", InsideUid.ToString(CultureInfo.InvariantCulture),
            "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--disable-userns",
            "--seccomp", "3",
            "--ro-bind", "/usr", "/usr",
        ];
        // A namespace the worker built is the launcher's already; bubblewrap keeps it.
        if (network?.Namespace is null)
            args.Add("--unshare-net");
        foreach (var path in TopLevelSystemPaths)
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target)
                args.AddRange(["--symlink", target, path]);
            else if (Directory.Exists(path))
                args.AddRange(["--ro-bind", path, path]);
        }
        // One bind for /etc (stubs and small copies), then the host directories over it. No name server: the proxy resolves.
        args.AddRange(["--ro-bind", etc, "/etc"]);
        foreach (var path in SandboxEtc.LiveDirectories)
            args.AddRange(["--ro-bind-try", path, path]);
        if (network?.McpHost is not null)
            args.AddRange(["--ro-bind", Path.Combine(request.Scratch, "hosts"), "/etc/hosts"]);
        // Mounts apply in order: /tmp first, so binaries that live under /tmp on the host stay visible above it.
        // Kernel knobs stay read-only even if the uid mapping ever gave the agent a host owner again.
        args.AddRange(["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger", "--dev", "/dev"]);
        args.AddRange(["--size", request.Limits.TmpBytes.ToString(CultureInfo.InvariantCulture), "--tmpfs", "/tmp"]);
        foreach (var (source, target) in _readOnlyExtras)
            args.AddRange(["--ro-bind", source, target]);
        args.AddRange(["--bind", request.Workspace, InsideWorkspace, "--bind", request.Home, InsideHome]);
        if (request.Artifacts is { } artifacts && !IsUnder(artifacts, request.Workspace))
            args.AddRange(["--bind", artifacts, InsideArtifacts]);
        args.AddRange(network?.BubblewrapArguments() ?? []);
        // Whatever of the worker's own state lies under a visible directory is covered up.
        foreach (var hidden in _options.HiddenPaths)
        {
            // What the agent would see at that path is whatever the bound source holds there (a copy leaves state out).
            var (source, target) = _readOnlyExtras.Append((Source: "/usr", Target: "/usr")).FirstOrDefault(e => IsUnder(hidden, e.Target));
            if (target is null)
                continue;
            var seen = source + hidden[target.Length..];
            if (Directory.Exists(seen))
                args.AddRange(["--tmpfs", hidden]);
            else if (File.Exists(seen))
                args.AddRange(["--ro-bind", "/dev/null", hidden]);
        }
        // The root bubblewrap builds is a writable tmpfs; freezing it leaves /workspace, the home and /tmp the only writable places.
        // The agent's variables reach bubblewrap through its environment, not its argv, which every host user can read.
        args.AddRange(["--remount-ro", "/", "--chdir", InsideWorkspace,
            "--unsetenv", ProcessTree.CookieVariable, "--unsetenv", ProcessTree.OwnerVariable]);
        return args;
    }

    private static bool IsUnder(string path, string directory) =>
        path == directory || path.StartsWith(directory.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    private sealed class Run(BubblewrapSandbox sandbox, SandboxRequest request, RunGroup? group, RunNetwork? network, string etc) : SandboxRun
    {
        public override string WorkspacePath => InsideWorkspace;
        public override string HomePath => InsideHome;
        public override string TmpPath => "/tmp";

        public override string? ArtifactsPath => request.Artifacts switch
        {
            null => null,
            var artifacts when IsUnder(artifacts, request.Workspace) => InsideWorkspace + artifacts[request.Workspace.Length..],
            _ => InsideArtifacts,
        };

        public override string? McpUrl(string? jobMcpUrl) => network?.InsideMcpUrl ?? jobMcpUrl;

        public override IReadOnlyDictionary<string, string> NetworkVariables => network?.Variables() ?? base.NetworkVariables;

        public override Uri? GatewayUrl => request.Gateway is null ? null : new Uri($"http://127.0.0.1:{Gateway.GatewayRun.InsidePort}/");

        public override Microsoft.Win32.SafeHandles.SafeFileHandle? NetworkNamespace => network?.Namespace;

        public override Task CloseNetworkAsync() => network?.CloseAsync() ?? Task.CompletedTask;

        public override string ToHostPath(string insidePath) =>
            IsUnder(insidePath, InsideWorkspace) ? request.Workspace + insidePath[InsideWorkspace.Length..] : insidePath;

        public override ProcessSpec Wrap(ProcessSpec agent)
        {
            var limits = request.Limits;
            List<string> argv =
            [
                "/bin/sh", "-c", Launcher, "sh",
                limits.OpenFiles.ToString(CultureInfo.InvariantCulture),
                // ulimit -f counts 512-byte blocks.
                (limits.FileSizeBytes / 512).ToString(CultureInfo.InvariantCulture),
                // RLIMIT_NPROC counts every process of the host user, so with a control group the pids limit is the better bound.
                group is null ? limits.Pids.ToString(CultureInfo.InvariantCulture) : "",
                sandbox._seccompFile, .. group?.JoinFiles ?? [],
            ];
            IEnumerable<string> inside = [.. network?.InsidePrefix(sandbox._selfCommand) ?? [], .. agent.Argv];
            argv.Add("--");
            if (sandbox._launchAs is null && sandbox._dropTo is { } uid)
            {
                var id = uid.ToString(CultureInfo.InvariantCulture);
                argv.AddRange(["setpriv", $"--reuid={id}", $"--regid={id}", "--clear-groups", "--"]);
            }
            argv.AddRange([sandbox._bwrap, .. sandbox.BubblewrapArguments(request, network, etc), "--", .. inside]);
            return agent with { Argv = argv, WorkingDirectory = request.Workspace, UserName = sandbox._launchAs };
        }

        // The launcher moves itself into the group before it starts bubblewrap, and never forks before that.
        public override bool HoldsAllProcesses => group is not null;

        public override void KillAll() => group?.KillAll();

        public override ResourceUsage? ReadUsage() => group?.ReadUsage();

        public override void Dispose()
        {
            group?.Dispose();
            network?.Dispose();
            base.Dispose();
        }
    }
}
