using AgentWorker.Core.Artifacts;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Core.Tests.Artifacts;

/// <summary>The artifacts folder as a hostile agent leaves it, without an object store: what is read, skipped and said.</summary>
public sealed class ArtifactCollectorTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-collect");
    private readonly List<string> _events = [];

    private string Folder => _dir.Combine("artifacts");

    public ArtifactCollectorTests() => Directory.CreateDirectory(Folder);

    private Task<IReadOnlyList<ArtifactRecord>> CollectAsync(ArtifactOptions? options = null, CancellationToken cancellationToken = default) =>
        new ArtifactCollector(null, options ?? new ArtifactOptions(), TimeProvider.System, NullLogger<ArtifactCollector>.Instance)
            .CollectAsync(Folder, "job-1", e =>
            {
                _events.Add(e.Message);
                return ValueTask.CompletedTask;
            }, cancellationToken).WaitAsync(TimeSpan.FromSeconds(10));

    [Theory]
    [InlineData("fifo")]
    [InlineData("socket")]
    [InlineData("device")]
    public async Task CollectAsync_NotARegularFile_IsSkippedAndSaid_WithoutBlocking(string kind)
    {
        Special.Make(kind, Path.Combine(Folder, "b.special"));
        File.WriteAllText(Path.Combine(Folder, "shot.png"), "png");

        var records = await CollectAsync();

        Assert.Equal(["shot.png"], records.Select(r => r.Name));
        Assert.Contains("b.special: skipped: not a regular file", _events);
    }

    [Fact]
    public async Task CollectAsync_SymlinkToAHostFileOrDirectory_IsSkippedAndNotRead()
    {
        var secret = _dir.Combine("secret");
        Directory.CreateDirectory(secret);
        File.WriteAllText(Path.Combine(secret, "key"), "host secret");
        File.CreateSymbolicLink(Path.Combine(Folder, "key.txt"), Path.Combine(secret, "key"));
        Directory.CreateSymbolicLink(Path.Combine(Folder, "dir"), secret);

        var records = await CollectAsync();

        Assert.Empty(records);
        Assert.Contains("key.txt: skipped: is or lies under a symbolic link", _events);
        Assert.Contains("dir: skipped: is or lies under a symbolic link", _events);
    }

    [Fact]
    public async Task CollectAsync_OverTheFileOrTotalLimit_IsNotReadNorStored()
    {
        File.WriteAllBytes(Path.Combine(Folder, "a.bin"), new byte[600]);
        File.WriteAllBytes(Path.Combine(Folder, "b.bin"), new byte[600]);
        File.WriteAllBytes(Path.Combine(Folder, "c.bin"), new byte[2000]);

        var records = await CollectAsync(new ArtifactOptions { MaxFileBytes = 1000, MaxTotalBytes = 1000 });

        Assert.Equal([("a.bin", false), ("b.bin", true), ("c.bin", true)], records.Select(r => (r.Name, r.Error is not null)));
        Assert.All(records.Where(r => r.Error is not null), r => Assert.Equal("", r.Sha256));
        Assert.Contains("MAX_ARTIFACT_MB", records[1].Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CollectAsync_MoreEntriesThanItLooksAt_StopsTheWalkAndSaysSo()
    {
        for (var i = 0; i < 30; i++)
            Directory.CreateDirectory(Path.Combine(Folder, $"d{i}"));

        var records = await CollectAsync(new ArtifactOptions { MaxEntries = 10 });

        Assert.Empty(records);
        Assert.Contains("artifacts folder: more than 10 entries, the rest not looked at", _events);
    }

    public void Dispose() => _dir.Dispose();
}
