using AgentWorker.Core.Artifacts;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Artifacts;

public sealed class AgentFilesTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-agentfiles");

    private string Tree => _dir.Combine("tree");

    public AgentFilesTests() => Directory.CreateDirectory(Path.Combine(Tree, "out"));

    [Fact]
    public void OpenRegular_RegularFile_IsOpenedForReading()
    {
        File.WriteAllText(Path.Combine(Tree, "out", "a.txt"), "abc");

        using var stream = AgentFiles.OpenRegular(Tree, "out/a.txt");

        Assert.Equal(3, stream.Length);
        Assert.Equal("abc", new StreamReader(stream).ReadToEnd());
    }

    [Fact]
    public void OpenRegular_DirectorySwappedForALinkAfterTheListing_IsRefused()
    {
        File.WriteAllText(Path.Combine(Tree, "out", "a.txt"), "listed");
        var listed = Directory.EnumerateFiles(Tree, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(Tree, f)).Single();
        var host = _dir.Combine("host");
        Directory.CreateDirectory(host);
        File.WriteAllText(Path.Combine(host, "a.txt"), "host secret");
        Directory.Delete(Path.Combine(Tree, "out"), recursive: true);
        Directory.CreateSymbolicLink(Path.Combine(Tree, "out"), host);

        var error = Assert.Throws<ArtifactException>(() => AgentFiles.OpenRegular(Tree, listed));

        Assert.Equal("is or lies under a symbolic link", error.Message);
    }

    [Fact]
    public void OpenRegular_FileSwappedForAFifo_IsRefusedAtOnce()
    {
        Special.Make("fifo", Path.Combine(Tree, "out", "a.txt"));

        var error = Assert.Throws<ArtifactException>(() => AgentFiles.OpenRegular(Tree, "out/a.txt"));

        Assert.Equal("not a regular file", error.Message);
    }

    public void Dispose() => _dir.Dispose();
}
