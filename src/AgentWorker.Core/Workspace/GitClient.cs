using System.Text;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Clones a repository into a workspace: shallow, hooks and fsmonitor disabled, no terminal prompts,
/// no system or user git config, the token (if any) supplied by a credential helper from the environment.
/// </summary>
internal sealed class GitClient(WorkspaceOptions options, ProcessRunner runner)
{
    private const string TokenVariable = "AGENT_WORKER_GIT_TOKEN";
    private const long MaxGitOutputBytes = 256 * 1024;

    // A mirror is only ever changed by these commands, so git must not start housekeeping of its own in it: a gc deleting
    // packs while another job clones from the mirror would break that clone. Fetched packs are kept as they arrive
    // (no unpacking into loose objects); MirrorCache compacts them when they pile up.
    private static readonly string[] MirrorConfig = ["-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "fetch.unpackLimit=1"];

    // The workspace's own copy of the objects is throwaway: copying the mirror's compressed objects as they are, without
    // searching for new deltas, is what makes a clone from the mirror fast.
    private static readonly string[] CopyConfig = ["-c", "pack.window=0"];

    private readonly SecretRedactor _redactor = new([options.GitToken]);

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

    private async Task CloneAsync(RepoRef repo, string source, string origin, string? mirror, string destination, string home, CancellationToken cancellationToken)
    {
        string[] copy = mirror is null ? [] : CopyConfig;
        if (repo.Commit is null)
        {
            string[] branch = repo.Branch is null ? [] : ["--branch", repo.Branch];
            string[] reference = mirror is null ? [] : ["--reference", mirror, "--dissociate"];
            await GitAsync(home, Path.GetDirectoryName(destination)!,
                [.. copy, "clone", "--depth", "1", "--no-tags", "--single-branch", .. branch, .. reference, "--", source, destination], cancellationToken).ConfigureAwait(false);
            if (source != origin)
                await GitAsync(home, destination, ["remote", "set-url", "origin", "--", origin], cancellationToken).ConfigureAwait(false);
            return;
        }
        // A commit is fetched on its own so the clone stays shallow.
        Directory.CreateDirectory(destination);
        await GitAsync(home, destination, ["init", "--quiet"], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["remote", "add", "origin", "--", origin], cancellationToken).ConfigureAwait(false);
        var alternates = Path.Combine(destination, ".git", "objects", "info", "alternates");
        if (mirror is not null)
            await File.WriteAllTextAsync(alternates, Path.Combine(mirror, "objects") + "\n", cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["fetch", "--depth", "1", "--no-tags", source == origin ? "origin" : source, repo.Commit], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["checkout", "--quiet", "--detach", "FETCH_HEAD"], cancellationToken).ConfigureAwait(false);
        if (mirror is not null)
        {
            // What `clone --dissociate` does: copy the borrowed objects the shallow history reaches, then stop borrowing.
            await GitAsync(home, destination, [.. copy, "repack", "-a", "-d", "--quiet"], cancellationToken).ConfigureAwait(false);
            File.Delete(alternates);
        }
    }

    /// <summary>
    /// Creates the bare mirror at <paramref name="mirror"/> when needed and brings every branch and tag of <paramref name="url"/>
    /// into it, removing those the remote no longer has. The URL is given on the command line, so the mirror's config holds
    /// neither it nor any credential.
    /// </summary>
    public async Task FetchMirrorAsync(string url, string mirror, string home, CancellationToken cancellationToken)
    {
        if (!File.Exists(Path.Combine(mirror, "HEAD")) || !File.Exists(Path.Combine(mirror, "config")))
            await GitAsync(home, mirror, ["init", "--bare", "--quiet", "--template="], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, mirror,
            [.. MirrorConfig, "fetch", "--quiet", "--prune", "--no-tags", "--", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The branch the remote's HEAD names (what a clone without <c>--branch</c> checks out), or null when it names none.</summary>
    public async Task<string?> DefaultBranchAsync(string url, string home, CancellationToken cancellationToken)
    {
        const string Prefix = "ref: refs/heads/";
        var output = await GitAsync(home, home, ["ls-remote", "--symref", "--", url, "HEAD"], cancellationToken).ConfigureAwait(false);
        return output.Split('\n')
            .Where(line => line.StartsWith(Prefix, StringComparison.Ordinal) && line.EndsWith("\tHEAD", StringComparison.Ordinal))
            .Select(line => line[Prefix.Length..^"\tHEAD".Length])
            .FirstOrDefault();
    }

    /// <summary>Merges a mirror's packs into fewer (geometric progression, so the work stays proportional to what was fetched since).</summary>
    public Task CompactMirrorAsync(string mirror, string home, CancellationToken cancellationToken) =>
        GitAsync(home, mirror, [.. MirrorConfig, "repack", "-d", "--quiet", "--geometric=2"], cancellationToken);

    /// <summary>Runs git with the worker's safety settings; returns its standard output.</summary>
    private async Task<string> GitAsync(string home, string workingDirectory, string[] args, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>
        {
            ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin",
            ["HOME"] = home,
            ["LANG"] = "C.UTF-8",
            ["GIT_TERMINAL_PROMPT"] = "0",
            ["GIT_CONFIG_NOSYSTEM"] = "1",
            ["GIT_ASKPASS"] = "/bin/false",
            ["SSH_ASKPASS"] = "/bin/false",
            ["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
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
        if (options.GitToken is { Length: > 0 } token)
        {
            environment[TokenVariable] = token;
            // Scoped to one HTTPS host: a job naming another server (or plain http) must not be handed the token.
            argv.AddRange(["-c", "credential.helper=", "-c",
                $"credential.https://{options.GitTokenHost}.helper=!f() {{ echo username=x-access-token; echo \"password=${TokenVariable}\"; }}; f"]);
        }
        argv.AddRange(args);

        var errors = new StringBuilder();
        var output = new StringBuilder();
        var outcome = await runner.RunAsync(
            new ProcessSpec(argv, workingDirectory, environment, options.CloneTimeout, MaxGitOutputBytes),
            line =>
            {
                var into = line.Stream == "stderr" ? errors : output;
                lock (into)
                    into.Append(line.Text).Append('\n');
                return ValueTask.CompletedTask;
            },
            cancellationToken).ConfigureAwait(false);

        cancellationToken.ThrowIfCancellationRequested();
        // The command, not the -c settings in front of it.
        var command = args.SkipWhile((arg, i) => arg == "-c" || (i > 0 && args[i - 1] == "-c")).First();
        if (outcome.End == ProcessEnd.TimedOut)
            throw new WorkspaceException($"git {command} timed out after {options.CloneTimeout.TotalSeconds:0}s", permanent: false);
        if (outcome.ExitCode != 0)
        {
            string message;
            lock (errors)
                message = errors.ToString().Trim();
            throw new WorkspaceException($"git {command} failed (exit {outcome.ExitCode}): {_redactor.Redact(message)}", permanent: false);
        }
        lock (output)
            return output.ToString();
    }
}
