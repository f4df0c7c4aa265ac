using System.Diagnostics;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Workspace;

public sealed class GitSshTests
{
    private static WorkspaceOptions Options(string? key = null, string? knownHosts = null, string checking = GitSsh.Strict) =>
        new() { WorkDir = "/tmp/w", SshKeyFile = key, SshKnownHostsFile = knownHosts, SshStrictHostKeyChecking = checking };

    [Fact]
    public void Command_Defaults_NeverPromptsAndChecksHostKeysStrictly()
    {
        Assert.Equal("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes", GitSsh.Command(Options()));
    }

    [Fact]
    public void Command_KeyAndKnownHosts_UsesOnlyThem()
    {
        var command = GitSsh.Command(Options("/etc/agent-worker/id_ed25519", "/etc/agent-worker/known_hosts", GitSsh.AcceptNew));

        Assert.Equal(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -i /etc/agent-worker/id_ed25519 -o IdentitiesOnly=yes "
            + "-o UserKnownHostsFile=/etc/agent-worker/known_hosts -o GlobalKnownHostsFile=/dev/null",
            command);
    }

    [Fact]
    public void Command_PathsWithShellCharacters_ReachSshAsOneArgumentEach()
    {
        using var dir = new TempDirectory();
        var key = dir.Combine("my key's $(touch pwned)");
        var knownHosts = dir.Combine("hosts; rm -rf x");

        var command = GitSsh.Command(Options(key, knownHosts));

        // git runs the value with `sh -c "$GIT_SSH_COMMAND" …`: the shell must hand ssh the paths unchanged.
        var printf = Process.Start(new ProcessStartInfo("sh", ["-c", command.Replace("ssh ", "printf '%s\\n' ", StringComparison.Ordinal)])
        {
            RedirectStandardOutput = true,
            WorkingDirectory = dir.Path,
        })!;
        var argv = printf.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        printf.WaitForExit();
        Assert.Contains(key, argv);
        Assert.Contains($"UserKnownHostsFile={knownHosts}", argv);
        Assert.False(File.Exists(dir.Combine("pwned")));
    }
}
