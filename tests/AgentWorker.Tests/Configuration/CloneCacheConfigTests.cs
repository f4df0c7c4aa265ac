using AgentWorker.Configuration;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Configuration;

public sealed class CloneCacheConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private static WorkerConfig Load(Dictionary<string, string> env) =>
        WorkerConfig.Load(ConfigValues.Resolve(new Dictionary<Setting, string?>(), env.GetValueOrDefault));

    [Fact]
    public void Load_Default_CacheOnUnderTheDataDirAndHiddenFromAgents()
    {
        var config = Load(new() { ["AGENT_WORKER_DATA"] = _dir.Combine("data") });

        var cache = Assert.IsType<Core.Workspace.CloneCacheOptions>(config.Workspace.CloneCache);
        Assert.Equal(_dir.Combine("data", "clone-cache"), cache.Dir);
        Assert.Equal(5120L * 1024 * 1024, cache.MaxBytes);
        Assert.Equal(TimeSpan.FromDays(7), cache.MaxAge);
        // Covered by the data directory's cover; a second cover inside it would show agents an empty mount point.
        Assert.Contains(config.DataDir, config.Sandbox.HiddenPaths);
        Assert.DoesNotContain(cache.Dir, config.Sandbox.HiddenPaths);
    }

    [Fact]
    public void Load_Settings_SetDirSizeAndAgeOrTurnItOff()
    {
        var config = Load(new() { ["CLONE_CACHE_DIR"] = _dir.Combine("mirrors"), ["CLONE_CACHE_MAX_MB"] = "100", ["CLONE_CACHE_MAX_AGE"] = "2h" });

        Assert.Equal(_dir.Combine("mirrors"), config.Workspace.CloneCache!.Dir);
        Assert.Equal(100L * 1024 * 1024, config.Workspace.CloneCache.MaxBytes);
        Assert.Equal(TimeSpan.FromHours(2), config.Workspace.CloneCache.MaxAge);
        Assert.Contains(_dir.Combine("mirrors"), config.Sandbox.HiddenPaths);
        Assert.Null(Load(new() { ["CLONE_CACHE"] = "off" }).Workspace.CloneCache);
        Assert.NotNull(Load(new() { ["CLONE_CACHE"] = "ON" }).Workspace.CloneCache);
    }

    [Theory]
    [InlineData("CLONE_CACHE", "maybe", "--clone-cache / CLONE_CACHE (from environment CLONE_CACHE)")]
    [InlineData("CLONE_CACHE_MAX_MB", "0", "--clone-cache-max-mb / CLONE_CACHE_MAX_MB")]
    [InlineData("CLONE_CACHE_MAX_MB", "lots", "--clone-cache-max-mb / CLONE_CACHE_MAX_MB")]
    [InlineData("CLONE_CACHE_MAX_AGE", "1s", "--clone-cache-max-age / CLONE_CACHE_MAX_AGE")]
    [InlineData("CLONE_CACHE_MAX_AGE", "soon", "--clone-cache-max-age / CLONE_CACHE_MAX_AGE")]
    [InlineData("CLONE_CACHE_DIR", "mirrors\0x", "--clone-cache-dir / CLONE_CACHE_DIR")]
    public void Load_BadValue_NamesTheSetting(string name, string value, string expected)
    {
        // Checked even with the cache off, so a typo shows before someone turns it on.
        var e = Assert.Throws<ConfigException>(() => Load(new() { ["CLONE_CACHE"] = name == "CLONE_CACHE" ? value : "off", [name] = value }));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _dir.Dispose();
}
