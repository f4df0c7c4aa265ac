namespace AgentWorker.Core.Workspace;

/// <summary>
/// The <c>GIT_SSH_COMMAND</c> git uses for <c>ssh://</c> and <c>user@host:path</c> remotes: never prompts, checks the
/// host key (strictly unless the operator chose <c>accept-new</c>), and uses the configured key and known_hosts files.
/// git runs the value through a shell, so every path is single-quoted.
/// </summary>
public static class GitSsh
{
    public const string Strict = "yes";
    public const string AcceptNew = "accept-new";

    public static string Command(WorkspaceOptions options)
    {
        List<string> argv = ["ssh", "-o", "BatchMode=yes", "-o", $"StrictHostKeyChecking={options.SshStrictHostKeyChecking}"];
        if (options.SshKeyFile is { } key)
            argv.AddRange(["-i", key, "-o", "IdentitiesOnly=yes"]);
        if (options.SshKnownHostsFile is { } knownHosts)
            argv.AddRange(["-o", $"UserKnownHostsFile={knownHosts}", "-o", "GlobalKnownHostsFile=/dev/null"]);
        return string.Join(' ', argv.Select(Quote));
    }

    /// <summary>POSIX shell single quoting: <c>'</c> inside becomes <c>'\''</c>.</summary>
    public static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '=' or '/' or '.' or ',' or ':' or '@')
            ? word
            : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
