using AgentWorker.Core.Workspace;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Workspace;

public sealed class SafeTreeTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-safetree");

    [Fact]
    public void Entries_DoesNotGoThroughSymlinks()
    {
        Directory.CreateDirectory(_dir.Combine("tree", "real"));
        File.WriteAllText(_dir.Combine("tree", "real", "a.txt"), "a");
        Directory.CreateDirectory(_dir.Combine("victim", "deep"));
        File.WriteAllText(_dir.Combine("victim", "deep", "secret.txt"), "s");
        Directory.CreateSymbolicLink(_dir.Combine("tree", "link"), _dir.Combine("victim"));

        var names = SafeTree.Entries(_dir.Combine("tree")).Select(e => Path.GetRelativePath(_dir.Combine("tree"), e.FullName)).Order(StringComparer.Ordinal).ToList();

        Assert.Equal(["link", "real", Path.Combine("real", "a.txt")], names);
    }

    [Fact]
    public void Delete_RemovesDeepTreesAndLockedDirectoriesButNotLinkTargets()
    {
        var root = _dir.Combine("tree");
        var deep = root;
        for (var i = 0; i < 600; i++)
            deep = Path.Combine(deep, "d");
        Directory.CreateDirectory(deep);
        Directory.CreateDirectory(_dir.Combine("victim"));
        File.WriteAllText(_dir.Combine("victim", "keep.txt"), "k");
        Directory.CreateSymbolicLink(Path.Combine(root, "link"), _dir.Combine("victim"));
        Directory.CreateDirectory(Path.Combine(root, "locked", "inner"));
        File.SetUnixFileMode(Path.Combine(root, "locked"), UnixFileMode.None);

        SafeTree.Delete(root);

        Assert.False(Directory.Exists(root));
        Assert.True(File.Exists(_dir.Combine("victim", "keep.txt")));
    }

    public void Dispose() => _dir.Dispose();
}
