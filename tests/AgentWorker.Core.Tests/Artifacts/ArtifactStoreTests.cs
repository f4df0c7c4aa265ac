using System.Security.Cryptography;
using AgentWorker.Core.Artifacts;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Artifacts;

public sealed class ArtifactStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-artifacts");
    private readonly ArtifactStore _store;
    private readonly string _tree;

    public ArtifactStoreTests()
    {
        _store = new ArtifactStore(_dir.Combine("store"));
        _tree = _dir.Combine("workspace");
        Directory.CreateDirectory(Path.Combine(_tree, "out"));
    }

    private Task<Core.Results.StoredArtifact> ImportAsync(string path, long maxBytes = 1 << 20) =>
        _store.ImportAsync(_tree, path, _store.AttemptDirectory("job:1", 1), maxBytes, CancellationToken.None);

    [Fact]
    public async Task ImportAsync_File_IsCopiedWithItsSizeAndHash()
    {
        File.WriteAllText(Path.Combine(_tree, "out", "report.txt"), "report\n");

        var artifact = await ImportAsync("out/report.txt");

        Assert.Equal("workspace/out/report.txt", artifact.Name);
        Assert.Equal(7, artifact.Size);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("report\n"u8)), artifact.Sha256);
        Assert.Equal("report\n", File.ReadAllText(_store.Locate(artifact)!));
    }

    [Theory]
    [InlineData("../secret")]
    [InlineData("out/../../secret")]
    [InlineData("missing.txt")]
    [InlineData("out")]
    public async Task ImportAsync_PathOutsideOrNotAFile_IsRefused(string path)
    {
        File.WriteAllText(_dir.Combine("secret"), "host secret");

        await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync(path));
    }

    [Fact]
    public async Task ImportAsync_SymlinkToHostFileOrThroughLinkedDirectory_IsRefused()
    {
        File.CreateSymbolicLink(Path.Combine(_tree, "passwd"), "/etc/passwd");
        Directory.CreateSymbolicLink(Path.Combine(_tree, "etc"), "/etc");

        var direct = await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync("passwd"));
        var through = await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync("etc/passwd"));

        Assert.Contains("symbolic link", direct.Message, StringComparison.Ordinal);
        Assert.Contains("symbolic link", through.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("socket")]
    [InlineData("device")]
    public async Task ImportAsync_NotARegularFile_IsRefusedWithoutBlockingAndLeavesNoFile(string kind)
    {
        Special.Make(kind, Path.Combine(_tree, "special"));

        var error = await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync("special").WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal("not a regular file", error.Message);
        Assert.Empty(Directory.EnumerateFiles(_store.Root, "special", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ImportAsync_SameFileUnderAnotherSpelling_KeepsTheFirstCopy_NamesNoHostPath()
    {
        File.WriteAllText(Path.Combine(_tree, "x.png"), "png");
        var first = await ImportAsync("x.png");

        var again = await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync("./x.png"));

        Assert.Equal("workspace/x.png", first.Name);
        Assert.Equal("already kept under this name", again.Message);
        Assert.Equal("png", File.ReadAllText(_store.Locate(first)!));
    }

    [Theory]
    [InlineData("./x.png", "x.png")]
    [InlineData("a//b/./c.txt", "a/b/c.txt")]
    [InlineData("./", null)]
    [InlineData("a/../b", null)]
    public void NormalizePath_SpellingsOfOneFile_AreOne(string path, string? expected)
    {
        Assert.Equal(expected, ArtifactStore.NormalizePath(path));
    }

    [Fact]
    public async Task ImportAsync_OverTheBudget_IsRefusedAndLeavesNoFile()
    {
        File.WriteAllBytes(Path.Combine(_tree, "big.bin"), new byte[2048]);

        var error = await Assert.ThrowsAsync<ArtifactException>(() => ImportAsync("big.bin", maxBytes: 1024));

        Assert.Contains("MAX_ARTIFACT_MB", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_dir.Path, error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(_store.Root, "big.bin", SearchOption.AllDirectories));
    }

    [Fact]
    public void AttemptDirectory_IdsThatLookAlikeAsPaths_GetDifferentDirectories()
    {
        Assert.NotEqual(_store.AttemptDirectory("a:b", 1), _store.AttemptDirectory("a_b", 1));
        Assert.StartsWith(_store.Root + "/", _store.AttemptDirectory("..", 1), StringComparison.Ordinal);
    }

    [Fact]
    public async Task VerifyAsync_TamperedArtifact_IsReportedAsMismatch()
    {
        File.WriteAllText(Path.Combine(_tree, "out", "report.txt"), "report\n");
        var artifact = await ImportAsync("out/report.txt");
        var receipt = Receipt([artifact]);
        Assert.True((await ReceiptCheck.VerifyAsync(receipt, _store, CancellationToken.None)).Single(c => c.Name == artifact.Name).Ok);

        File.WriteAllText(_store.Locate(artifact)!, "changed\n");

        var check = (await ReceiptCheck.VerifyAsync(receipt, _store, CancellationToken.None)).Single(c => c.Name == artifact.Name);
        Assert.False(check.Ok);
        Assert.NotNull(check.Actual);
    }

    private static Core.Results.RunReceipt Receipt(IReadOnlyList<Core.Results.StoredArtifact> artifacts) => new()
    {
        JobId = "job:1",
        Attempt = 1,
        Worker = "w",
        Repository = new Core.Results.ReceiptRepository("/r", null, null),
        CommitBefore = "0000",
        Mode = "dry_run",
        Agent = new Core.Results.ReceiptAgent("a", ["a"]),
        Sandbox = new Core.Results.ReceiptSandbox("none", "none", null, new Core.Sandbox.SandboxLimits(), 1, 1),
        End = "exited",
        Usage = new Core.Results.ReceiptUsage(null, 0, false),
        Timings = new Core.Results.ReceiptTimings(default, default, default, default, 0, 0),
        DiffSha256 = "none",
        Artifacts = artifacts,
    };

    public void Dispose() => _dir.Dispose();
}
