using System.Globalization;
using System.Text;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Runs git for the worker: shallow clones (from the remote or from a clone cache mirror), the mirrors' fetches, and the
/// post-run commands on a workspace. Hooks and fsmonitor are disabled, there are no terminal prompts and no system or user
/// git config; the token (if any) is supplied by a credential helper from the environment, SSH gets <see cref="GitSsh.Command"/>.
/// </summary>
internal sealed class GitClient(WorkspaceOptions options, ProcessRunner runner)
{
    private const string TokenVariable = "AGENT_WORKER_GIT_TOKEN";
    internal const long MaxGitOutputBytes = 256 * 1024;

    // A mirror is only ever changed by these commands, so git must not start housekeeping of its own in it: a gc deleting
    // packs while another job clones from the mirror would break that clone. Fetched packs are kept as they arrive
    // (no unpacking into loose objects); MirrorCache compacts them when they pile up.
    private static readonly (string, string)[] MirrorConfig = [("gc.auto", "0"), ("maintenance.auto", "false"), ("fetch.unpackLimit", "1")];

    // The workspace's own copy of the objects is throwaway: copying the mirror's compressed objects as they are, without
    // searching for new deltas, is what makes a clone from the mirror fast.
    private static readonly (string, string)[] CopyConfig = [("pack.window", "0")];

    private readonly SecretRedactor _redactor = new([options.GitToken]);
    private readonly string _sshCommand = GitSsh.Command(options);

    public WorkspaceOptions Options => options;

    public Task CloneAsync(RepoRef repo, string destination, string home, CancellationToken cancellationToken)
    {
        var url = RepoUrls.ToGitUrl(repo.Url);
        return CloneAsync(repo, url, url, mirror: null, destination, home, cancellationToken);
    }

    /// <summary>
    /// Clones from a local mirror of <paramref name="repo"/> (see <see cref="FetchMirrorAsync"/>) instead of the remote. The
    /// workspace gets its own copy of the objects it needs (no alternates), so it does not depend on the mirror afterwards;
    /// its <c>origin</c> is the remote, as in a direct clone.
    /// </summary>
    public Task CloneFromMirrorAsync(RepoRef repo, string mirror, string destination, string home, CancellationToken cancellationToken) =>
        CloneAsync(repo, new Uri(mirror).AbsoluteUri, RepoUrls.ToGitUrl(repo.Url), mirror, destination, home, cancellationToken);

    // The files are written only after the tree they come from was measured (CheckTreeAsync): a small pack can hold a
    // checkout of any size (one large blob under many names), so the size on disk afterwards is too late to ask.
    private async Task CloneAsync(RepoRef repo, string source, string origin, string? mirror, string destination, string home, CancellationToken cancellationToken)
    {
        IReadOnlyList<(string, string)> copy = mirror is null ? [] : CopyConfig;
        // A mirror is the worker's own and read as the worker; only the job's repository is read with the sandbox user's rights.
        var uploadPack = mirror is null ? UploadPack(source) : [];
        if (repo.Commit is null)
        {
            string[] branch = repo.Branch is null ? [] : ["--branch", repo.Branch];
            string[] reference = mirror is null ? [] : ["--reference", mirror, "--dissociate"];
            await GitAsync(new GitCall(home, Path.GetDirectoryName(destination)!,
                ["clone", "--depth", "1", "--no-tags", "--single-branch", "--no-checkout", .. branch, .. reference, .. uploadPack, "--", source, destination]) { Config = copy }, cancellationToken).ConfigureAwait(false);
            if (source != origin)
                await GitAsync(new GitCall(home, destination, ["remote", "set-url", "origin", "--", origin]), cancellationToken).ConfigureAwait(false);
            await CheckTreeAsync(home, destination, "HEAD", cancellationToken).ConfigureAwait(false);
            await GitAsync(new GitCall(home, destination, ["checkout", "--quiet"]), cancellationToken).ConfigureAwait(false);
            return;
        }
        // A commit is fetched on its own so the clone stays shallow.
        Directory.CreateDirectory(destination);
        await GitAsync(new GitCall(home, destination, ["init", "--quiet"]), cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["remote", "add", "origin", "--", origin]), cancellationToken).ConfigureAwait(false);
        var alternates = Path.Combine(destination, ".git", "objects", "info", "alternates");
        if (mirror is not null)
            await File.WriteAllTextAsync(alternates, Path.Combine(mirror, "objects") + "\n", cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["fetch", "--depth", "1", "--no-tags", .. uploadPack, source == origin ? "origin" : source, repo.Commit]), cancellationToken).ConfigureAwait(false);
        await CheckTreeAsync(home, destination, "FETCH_HEAD", cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["checkout", "--quiet", "--detach", "FETCH_HEAD"]), cancellationToken).ConfigureAwait(false);
        if (mirror is not null)
        {
            // What `clone --dissociate` does: copy the borrowed objects the shallow history reaches, then stop borrowing.
            await GitAsync(new GitCall(home, destination, ["repack", "-a", "-d", "--quiet"]) { Config = copy }, cancellationToken).ConfigureAwait(false);
            File.Delete(alternates);
        }
    }

    /// <summary>
    /// Throws a permanent <see cref="WorkspaceException"/> when the checkout of <paramref name="revision"/> would pass
    /// MAX_REPO_FILES or MAX_REPO_SIZE_MB, reading the sizes from the tree's objects before a file is written.
    /// </summary>
    private async Task CheckTreeAsync(string home, string repository, string revision, CancellationToken cancellationToken)
    {
        long bytes = 0;
        var files = 0;
        var over = false;
        // "<mode> <type> <object> <size>\t<path>"; a submodule (commit) has no size and is not checked out.
        var call = new GitCall(home, repository, ["ls-tree", "-r", "-l", "--full-tree", revision]) { MaxOutputBytes = long.MaxValue };
        var output = await RunAsync(call, line =>
        {
            var fields = line.Split('\t', 2)[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (over || fields is not [_, "blob", _, var size])
                return;
            files++;
            bytes += long.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length : 0;
            over = files > options.MaxRepoFiles || bytes > options.MaxRepoBytes;
        }, cancellationToken).ConfigureAwait(false);
        if (output.ExitCode != 0)
            throw Failed(call, output);
        if (files > options.MaxRepoFiles)
            throw new WorkspaceException($"repository has more than {options.MaxRepoFiles} files (MAX_REPO_FILES); nothing was checked out", permanent: true);
        if (bytes > options.MaxRepoBytes)
            throw new WorkspaceException($"repository checkout is larger than {options.MaxRepoBytes / (1024 * 1024)} MiB (MAX_REPO_SIZE_MB); nothing was checked out", permanent: true);
    }

    /// <summary>
    /// For a local repository and a root worker, the side of git that reads it (upload-pack) runs as the sandbox user, so a
    /// job can only clone what that user may read, never what only root may. Ownership checks stay off for that process
    /// alone: the repository belongs to someone else by design.
    /// </summary>
    private string[] UploadPack(string url) =>
        options.LocalReaderUid is { } uid && url.StartsWith("file:", StringComparison.Ordinal)
            ? [$"--upload-pack=setpriv --reuid={uid} --regid={uid} --clear-groups -- git -c safe.directory=* -c core.attributesFile=/dev/null upload-pack"]
            : [];

    /// <summary>
    /// Creates the bare mirror at <paramref name="mirror"/> when needed and brings every branch and tag of <paramref name="url"/>
    /// into it, removing those the remote no longer has. The URL is given on the command line, so the mirror's config holds
    /// neither it nor any credential.
    /// </summary>
    public async Task FetchMirrorAsync(string url, string mirror, string home, CancellationToken cancellationToken)
    {
        if (!File.Exists(Path.Combine(mirror, "HEAD")) || !File.Exists(Path.Combine(mirror, "config")))
            await GitAsync(new GitCall(home, mirror, ["init", "--bare", "--quiet", "--template="]), cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, mirror,
            ["fetch", "--quiet", "--prune", "--no-tags", .. UploadPack(url), "--", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]) { Config = MirrorConfig }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The branch the remote's HEAD names (what a clone without <c>--branch</c> checks out), or null when it names none.</summary>
    public async Task<string?> DefaultBranchAsync(string url, string home, CancellationToken cancellationToken)
    {
        const string Prefix = "ref: refs/heads/";
        var lines = await GitAsync(new GitCall(home, home, ["ls-remote", "--symref", .. UploadPack(url), "--", url, "HEAD"]), cancellationToken).ConfigureAwait(false);
        return lines
            .Where(line => line.StartsWith(Prefix, StringComparison.Ordinal) && line.EndsWith("\tHEAD", StringComparison.Ordinal))
            .Select(line => line[Prefix.Length..^"\tHEAD".Length])
            .FirstOrDefault();
    }

    /// <summary>Merges a mirror's packs into fewer (geometric progression, so the work stays proportional to what was fetched since).</summary>
    public Task CompactMirrorAsync(string mirror, string home, CancellationToken cancellationToken) =>
        GitAsync(new GitCall(home, mirror, ["repack", "-d", "--quiet", "--geometric=2"]) { Config = MirrorConfig }, cancellationToken);

    /// <summary>Whether <paramref name="branch"/> exists on the remote <paramref name="url"/>.</summary>
    public async Task<bool> RemoteHasBranchAsync(string url, string branch, string home, CancellationToken cancellationToken)
    {
        // --exit-code: 2 when no ref matched.
        var gitUrl = RepoUrls.ToGitUrl(url);
        var call = new GitCall(home, home, ["ls-remote", "--exit-code", "--heads", .. UploadPack(gitUrl), "--", gitUrl, $"refs/heads/{branch}"]);
        var output = await RunAsync(call, cancellationToken).ConfigureAwait(false);
        return output.ExitCode switch
        {
            0 => true,
            2 => false,
            _ => throw Failed(call, output),
        };
    }

    /// <summary>Runs git and returns its stdout lines; a non-zero exit is a <see cref="WorkspaceException"/> (not permanent).</summary>
    public async Task<IReadOnlyList<string>> GitAsync(GitCall call, CancellationToken cancellationToken)
    {
        var output = await RunAsync(call, cancellationToken).ConfigureAwait(false);
        return output.ExitCode == 0 ? output.Lines : throw Failed(call, output);
    }

    /// <summary>Runs git; throws only on timeout and cancellation.</summary>
    public async Task<GitOutput> RunAsync(GitCall call, CancellationToken cancellationToken)
    {
        var lines = new List<string>();
        var output = await RunAsync(call, line =>
        {
            lock (lines)
                lines.Add(line);
        }, cancellationToken).ConfigureAwait(false);
        lock (lines)
            return output with { Lines = [.. lines] };
    }

    /// <summary>
    /// Runs git, handing each stdout line to <paramref name="onLine"/> as it comes (at most <see cref="GitCall.MaxOutputBytes"/>
    /// of them, nothing kept), so output as long as the agent's tree is wide costs no memory. Throws only on timeout and cancellation.
    /// </summary>
    public async Task<GitOutput> RunAsync(GitCall call, Action<string> onLine, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>
        {
            ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin",
            ["HOME"] = call.Home,
            ["LANG"] = "C.UTF-8",
            ["GIT_TERMINAL_PROMPT"] = "0",
            ["GIT_CONFIG_NOSYSTEM"] = "1",
            ["GIT_CONFIG_GLOBAL"] = "/dev/null",
            ["GIT_ASKPASS"] = "/bin/false",
            ["SSH_ASKPASS"] = "/bin/false",
            ["GIT_SSH_COMMAND"] = _sshCommand,
        };
        List<string> argv =
        [
            "git",
            "-c", "core.hooksPath=/dev/null",
            "-c", "core.fsmonitor=false",
            "-c", "protocol.ext.allow=never",
            "-c", "protocol.file.allow=always",
            "-c", "advice.detachedHead=false",
        ];
        if (call.GitDir is { } gitDir)
            argv.AddRange([$"--git-dir={gitDir}", $"--work-tree={call.WorkTree ?? call.WorkingDirectory}"]);
        foreach (var (name, value) in call.Config)
            argv.AddRange(["-c", $"{name}={value}"]);
        if (options.GitToken is { Length: > 0 } token)
        {
            environment[TokenVariable] = token;
            // Scoped to one HTTPS host: a job naming another server (or plain http) must not be handed the token.
            argv.AddRange(["-c", "credential.helper=", "-c",
                $"credential.https://{options.GitTokenHost}.helper=!f() {{ echo username=x-access-token; echo \"password=${TokenVariable}\"; }}; f"]);
        }
        argv.AddRange(call.Args);
        // The kernel stops a file git writes at the cap (SIGXFSZ): nothing in the output, so the file is bounded exactly.
        if (call.MaxFileBytes is { } maxFileBytes)
            argv.InsertRange(0, ["prlimit", $"--fsize={maxFileBytes}", "--"]);

        var errors = new StringBuilder();
        var timeout = call.Timeout ?? options.CloneTimeout;
        var outcome = await runner.RunAsync(
            new ProcessSpec(argv, call.WorkingDirectory, environment, timeout, call.MaxOutputBytes),
            line =>
            {
                if (line.Stream == "stderr")
                {
                    lock (errors)
                        errors.AppendLine(line.Text);
                }
                else
                {
                    onLine(line.Text);
                }
                return ValueTask.CompletedTask;
            },
            cancellationToken).ConfigureAwait(false);

        cancellationToken.ThrowIfCancellationRequested();
        if (outcome.End == ProcessEnd.TimedOut)
            throw new WorkspaceException($"git {call.Args[0]} timed out after {timeout.TotalSeconds:0}s", permanent: false);
        lock (errors)
            return new GitOutput(outcome.ExitCode ?? -1, [], _redactor.Redact(errors.ToString().Trim()));
    }

    private static WorkspaceException Failed(GitCall call, GitOutput output) =>
        new($"git {call.Args[0]} failed (exit {output.ExitCode}): {output.Errors}", permanent: false);
}

/// <summary>
/// One git command. <paramref name="Home"/> is git's HOME, <paramref name="WorkingDirectory"/> where it runs. With
/// <see cref="GitDir"/> set, git uses that repository and <see cref="WorkTree"/> (default: the working directory) and
/// never looks for a <c>.git</c> of its own.
/// </summary>
internal sealed record GitCall(string Home, string WorkingDirectory, IReadOnlyList<string> Args)
{
    public string? GitDir { get; init; }
    public string? WorkTree { get; init; }

    /// <summary>Extra <c>-c name=value</c> settings.</summary>
    public IReadOnlyList<(string Name, string Value)> Config { get; init; } = [];

    /// <summary>How long git may run before its process tree is killed; null: <see cref="WorkspaceOptions.CloneTimeout"/>.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Bytes of stdout read; the rest is drained and dropped.</summary>
    public long MaxOutputBytes { get; init; } = GitClient.MaxGitOutputBytes;

    /// <summary>The largest file git may write (RLIMIT_FSIZE); past it git is stopped by SIGXFSZ. Null: no limit.</summary>
    public long? MaxFileBytes { get; init; }
}

/// <summary>How git ended: exit code, stdout lines, stderr (the token masked).</summary>
internal sealed record GitOutput(int ExitCode, IReadOnlyList<string> Lines, string Errors);
