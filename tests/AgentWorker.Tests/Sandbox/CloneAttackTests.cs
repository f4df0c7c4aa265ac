using AgentWorker.Testing;

namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// Repositories and environments that would run a command on the host while the worker clones or later
/// touches a workspace with git: hooks, <c>core.fsmonitor</c>, filter and diff drivers, submodule URLs.
/// Each would-be command runs <see cref="Evil"/>, which leaves a marker file named after the route it came by.
/// </summary>
public sealed class CloneAttackFixture : SandboxWorkerFixture
{
    private static readonly string[] HookNames =
    [
        "post-checkout", "post-merge", "post-rewrite", "post-index-change", "reference-transaction", "pre-commit",
        "post-commit", "pre-auto-gc", "fsmonitor-watchman", "post-update", "push-to-checkout", "pre-push",
    ];

    public string Markers => Dir.Combine("markers");

    public string Evil => Dir.Combine("evil");

    public string EvilHooks => Dir.Combine("evil-hooks");

    public string HostileRepository => Dir.Combine("hostile.git");

    protected override IReadOnlyDictionary<string, string> RepositoryFiles => new Dictionary<string, string>
    {
        ["README.md"] = "looks harmless\n",
        [".gitattributes"] = "* filter=evil diff=evil merge=evil\n",
        [".gitmodules"] = $"[submodule \"sub\"]\n\tpath = sub\n\turl = ext::sh -c {Evil}% submodule-ext-url\n",
    };

    /// <summary>Git settings in the worker's own environment: a cleared git environment never lets them reach a clone.</summary>
    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["GIT_CONFIG_COUNT"] = "3",
        ["GIT_CONFIG_KEY_0"] = "filter.evil.smudge",
        ["GIT_CONFIG_VALUE_0"] = $"{Evil} worker-env-smudge",
        ["GIT_CONFIG_KEY_1"] = "filter.evil.process",
        ["GIT_CONFIG_VALUE_1"] = $"{Evil} worker-env-process",
        ["GIT_CONFIG_KEY_2"] = "core.hooksPath",
        ["GIT_CONFIG_VALUE_2"] = EvilHooks,
        ["GIT_CONFIG_GLOBAL"] = Dir.Combine("evil.gitconfig"),
    };

    protected override Task PrepareAsync()
    {
        Directory.CreateDirectory(Markers);
        File.SetUnixFileMode(Markers, (UnixFileMode)0x1FF);
        WriteScript(Evil, $"#!/bin/sh\ntouch \"{Markers}/$1\"\n");
        Directory.CreateDirectory(EvilHooks);
        foreach (var hook in HookNames)
            WriteScript(Path.Combine(EvilHooks, hook), $"#!/bin/sh\nexec {Evil} hooks-path-{hook}\n");
        File.WriteAllText(Dir.Combine("evil.gitconfig"), $"[core]\n\thooksPath = {EvilHooks}\n\tfsmonitor = {Evil} worker-global-fsmonitor\n[filter \"evil\"]\n\tsmudge = {Evil} worker-global-smudge\n");

        // The remote's own config and hooks: honoured by git only inside that repository, never cloned.
        TestRepository.Git(Dir.Path, "clone", "--bare", "--quiet", RepoPath, HostileRepository);
        File.AppendAllText(Path.Combine(HostileRepository, "config"), $"""
            [core]
            	hooksPath = {EvilHooks}
            	fsmonitor = {Evil} remote-fsmonitor
            [filter "evil"]
            	smudge = {Evil} remote-smudge
            	clean = {Evil} remote-clean
            	process = {Evil} remote-process
            	required = true
            [diff "evil"]
            	textconv = {Evil} remote-textconv
            [uploadpack]
            	packObjectsHook = {Evil} remote-pack-objects-hook
            [include]
            	path = {Dir.Combine("evil.gitconfig")}

            """);
        foreach (var hook in HookNames)
            WriteScript(Path.Combine(HostileRepository, "hooks", hook), $"#!/bin/sh\nexec {Evil} remote-hook-{hook}\n");
        return Task.CompletedTask;
    }

    private static void WriteScript(string path, string text)
    {
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, (UnixFileMode)0x1ED);
    }

    protected override IEnumerable<HostileAgent> Agents =>
    [
        new("inspect-clone", """
            sed 's/^/CONFIG /' .git/config
            ls -A .git/hooks | sed 's/^/HOOK /'
            echo "ATTRIBUTES $(cat .gitattributes)"
            echo DONE
            """),
        // Plants in its workspace what would run if the worker ran git there afterwards (diff, commit, status).
        new("plant-git-config", $$"""
            {
              printf '[core]\n\tfsmonitor = {{Evil}} planted-fsmonitor\n\thooksPath = {{EvilHooks}}\n'
              printf '[filter "evil"]\n\tclean = {{Evil}} planted-clean\n\tprocess = {{Evil}} planted-process\n'
              printf '[diff "evil"]\n\ttextconv = {{Evil}} planted-textconv\n'
            } >> .git/config
            for hook in pre-commit post-commit post-checkout post-index-change reference-transaction; do
              printf '#!/bin/sh\n{{Evil}} planted-hook-%s\n' "$hook" > ".git/hooks/$hook"
              chmod +x ".git/hooks/$hook"
            done
            echo changed >> README.md
            echo DONE
            """),
    ];
}

/// <summary>Clone safety: no command a repository or the worker's environment names runs at clone time or afterwards.</summary>
public sealed class CloneAttackTests(CloneAttackFixture fixture) : IClassFixture<CloneAttackFixture>
{
    [Fact]
    public async Task Clone_RemoteWithHooksFsmonitorAndFilterDrivers_RunsNoneOfThem()
    {
        var run = await fixture.RunAsync("inspect-clone", repoUrl: fixture.HostileRepository);

        Assert.Equal("succeeded", run.State);
        run.AssertFinished();
        // The attributes that name the driver did arrive; the driver's definition did not.
        Assert.Equal("* filter=evil diff=evil merge=evil", run.Value("ATTRIBUTES"));
        Assert.DoesNotContain(run.Values("CONFIG"), l => l.Contains(fixture.Evil, StringComparison.Ordinal));
        AssertNoMarkers();
    }

    [Fact]
    public async Task Clone_WithGitSettingsInTheWorkerEnvironment_IgnoresThem()
    {
        var run = await fixture.RunAsync("inspect-clone");

        Assert.Equal("succeeded", run.State);
        run.AssertFinished();
        AssertNoMarkers();
    }

    [Fact]
    public async Task AgentPlantingGitConfigInItsWorkspace_GetsNothingRunOnTheHost()
    {
        var run = await fixture.RunAsync("plant-git-config");

        Assert.Equal("succeeded", run.State);
        run.AssertFinished();
        AssertNoMarkers();
    }

    private void AssertNoMarkers() =>
        Assert.Empty(Directory.EnumerateFileSystemEntries(fixture.Markers).Select(Path.GetFileName));
}
