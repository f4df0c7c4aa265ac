using System.Text;
using AgentWorker.Core.Execution;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Runs git for the worker: shallow clones, and the post-run commands on a workspace. Hooks and fsmonitor are
/// disabled, there are no terminal prompts and no system or user git config; the token (if any) is supplied by a
/// credential helper from the environment, SSH gets <see cref="GitSsh.Command"/>.
/// </summary>
internal sealed class GitClient(WorkspaceOptions options, ProcessRunner runner)
{
    private const string TokenVariable = "AGENT_WORKER_GIT_TOKEN";
    private const long MaxGitOutputBytes = 256 * 1024;
    private readonly SecretRedactor _redactor = new([options.GitToken]);
    private readonly string _sshCommand = GitSsh.Command(options);

    public WorkspaceOptions Options => options;

    public async Task CloneAsync(RepoRef repo, string destination, string home, CancellationToken cancellationToken)
    {
        var url = RepoUrls.ToGitUrl(repo.Url);
        if (repo.Commit is null)
        {
            string[] branch = repo.Branch is null ? [] : ["--branch", repo.Branch];
            await GitAsync(new GitCall(home, Path.GetDirectoryName(destination)!,
                ["clone", "--depth", "1", "--no-tags", "--single-branch", .. branch, "--", url, destination]), cancellationToken).ConfigureAwait(false);
            return;
        }
        // A commit is fetched on its own so the clone stays shallow.
        Directory.CreateDirectory(destination);
        await GitAsync(new GitCall(home, destination, ["init", "--quiet"]), cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["remote", "add", "origin", "--", url]), cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["fetch", "--depth", "1", "--no-tags", "origin", repo.Commit]), cancellationToken).ConfigureAwait(false);
        await GitAsync(new GitCall(home, destination, ["checkout", "--quiet", "--detach", "FETCH_HEAD"]), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="branch"/> exists on the remote <paramref name="url"/>.</summary>
    public async Task<bool> RemoteHasBranchAsync(string url, string branch, string home, CancellationToken cancellationToken)
    {
        // --exit-code: 2 when no ref matched.
        var call = new GitCall(home, home, ["ls-remote", "--exit-code", "--heads", "--", RepoUrls.ToGitUrl(url), $"refs/heads/{branch}"]);
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

        var errors = new StringBuilder();
        var lines = new List<string>();
        var outcome = await runner.RunAsync(
            new ProcessSpec(argv, call.WorkingDirectory, environment, options.CloneTimeout, MaxGitOutputBytes),
            line =>
            {
                if (line.Stream == "stderr")
                {
                    lock (errors)
                        errors.AppendLine(line.Text);
                }
                else
                {
                    lock (lines)
                        lines.Add(line.Text);
                }
                return ValueTask.CompletedTask;
            },
            cancellationToken).ConfigureAwait(false);

        cancellationToken.ThrowIfCancellationRequested();
        if (outcome.End == ProcessEnd.TimedOut)
            throw new WorkspaceException($"git {call.Args[0]} timed out after {options.CloneTimeout.TotalSeconds:0}s", permanent: false);
        lock (errors)
        lock (lines)
            return new GitOutput(outcome.ExitCode ?? -1, [.. lines], _redactor.Redact(errors.ToString().Trim()));
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
}

/// <summary>How git ended: exit code, stdout lines, stderr (the token masked).</summary>
internal sealed record GitOutput(int ExitCode, IReadOnlyList<string> Lines, string Errors);
