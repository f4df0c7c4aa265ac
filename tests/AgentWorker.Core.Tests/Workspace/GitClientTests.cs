using AgentWorker.Core.Execution;
using AgentWorker.Core.Workspace;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Workspace;

/// <summary>What every git command of the worker (clone, ls-remote, push) is given, asked of git itself.</summary>
public sealed class GitClientTests : IDisposable
{
    private const string Token = "tok-0123456789";
    private readonly TempDirectory _home = new("aw-git-home");

    private async Task<GitOutput> GitAsync(params string[] args)
    {
        var git = new GitClient(new WorkspaceOptions { WorkDir = _home.Path, GitToken = Token, GitTokenHost = "git.example" }, new ProcessRunner(TimeProvider.System));
        return await git.RunAsync(new GitCall(_home.Path, _home.Path, args), CancellationToken.None);
    }

    [Fact]
    public async Task Token_IsOfferedByAHelperOnlyToHttpsOfTheTokenHost()
    {
        var forHost = await GitAsync("config", "--get-urlmatch", "credential.helper", "https://git.example/org/app.git");
        var plainHttp = await GitAsync("config", "--get-urlmatch", "credential.helper", "http://git.example/org/app.git");
        var otherHost = await GitAsync("config", "--get-urlmatch", "credential.helper", "https://evil.example/org/app.git");

        var helper = Assert.Single(forHost.Lines);
        Assert.Contains("$AGENT_WORKER_GIT_TOKEN", helper, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, helper, StringComparison.Ordinal);
        Assert.All(new[] { plainHttp, otherHost }, o => Assert.DoesNotContain(o.Lines, l => l.Contains("AGENT_WORKER_GIT_TOKEN", StringComparison.Ordinal)));
    }

    public void Dispose() => _home.Dispose();
}
