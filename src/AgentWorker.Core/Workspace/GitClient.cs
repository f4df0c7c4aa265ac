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
    private readonly SecretRedactor _redactor = new([options.GitToken]);

    public async Task CloneAsync(RepoRef repo, string destination, string home, CancellationToken cancellationToken)
    {
        var url = RepoUrls.ToGitUrl(repo.Url);
        if (repo.Commit is null)
        {
            string[] branch = repo.Branch is null ? [] : ["--branch", repo.Branch];
            await GitAsync(home, Path.GetDirectoryName(destination)!,
                ["clone", "--depth", "1", "--no-tags", "--single-branch", .. branch, "--", url, destination], cancellationToken).ConfigureAwait(false);
            return;
        }
        // A commit is fetched on its own so the clone stays shallow.
        Directory.CreateDirectory(destination);
        await GitAsync(home, destination, ["init", "--quiet"], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["remote", "add", "origin", "--", url], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["fetch", "--depth", "1", "--no-tags", "origin", repo.Commit], cancellationToken).ConfigureAwait(false);
        await GitAsync(home, destination, ["checkout", "--quiet", "--detach", "FETCH_HEAD"], cancellationToken).ConfigureAwait(false);
    }

    private async Task GitAsync(string home, string workingDirectory, string[] args, CancellationToken cancellationToken)
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
        var outcome = await runner.RunAsync(
            new ProcessSpec(argv, workingDirectory, environment, options.CloneTimeout, MaxGitOutputBytes),
            line =>
            {
                if (line.Stream == "stderr")
                {
                    lock (errors)
                        errors.AppendLine(line.Text);
                }
                return ValueTask.CompletedTask;
            },
            cancellationToken).ConfigureAwait(false);

        cancellationToken.ThrowIfCancellationRequested();
        if (outcome.End == ProcessEnd.TimedOut)
            throw new WorkspaceException($"git {args[0]} timed out after {options.CloneTimeout.TotalSeconds:0}s", permanent: false);
        if (outcome.ExitCode != 0)
        {
            string message;
            lock (errors)
                message = errors.ToString().Trim();
            throw new WorkspaceException($"git {args[0]} failed (exit {outcome.ExitCode}): {_redactor.Redact(message)}", permanent: false);
        }
    }
}
