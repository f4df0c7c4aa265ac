using System.Text;
using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class RepositoryFilesTests : IDisposable
{
    private readonly TempRepository repository = new();

    public void Dispose() => repository.Dispose();

    [Fact]
    public void List_VersionControlAndVendoredDirectories_AreNotListed()
    {
        repository
            .Write("src/app.js", "x")
            .Write(".git/config", "x")
            .Write("node_modules/left-pad/index.js", "x")
            .Write("web/node_modules/a.js", "x")
            .Write("bin/Debug/app.dll.config", "x")
            .Write("obj/project.assets.json", "x")
            .Write("vendor/lib.go", "x")
            .Write("dist/bundle.js", "x")
            .Write("target/release/build.rs", "x")
            .Write(".venv/lib/site.py", "x")
            .Write("binder/keep.txt", "x");

        var files = List();

        Assert.Equal(["binder/keep.txt", "src/app.js"], files.Paths);
    }

    [Fact]
    public void List_HiddenFiles_AreListed()
    {
        repository.Write(".env", "A=1").Write(".github/workflows/ci.yml", "on: push");

        Assert.Equal([".env", ".github/workflows/ci.yml"], List().Paths);
    }

    [Fact]
    public void List_NestedDirectories_AreInOrdinalPathOrder()
    {
        repository.Write("a/b.txt", "x").Write("a-b.txt", "x").Write("B.txt", "x").Write("a/a/z.txt", "x");

        Assert.Equal(["B.txt", "a-b.txt", "a/a/z.txt", "a/b.txt"], List().Paths);
    }

    [Fact]
    public void List_Symlinks_AreSkippedAndNotFollowed()
    {
        using var outside = new TempRepository();
        outside.Write("secret.txt", "outside").Write("dir/inner.txt", "outside");
        repository
            .Write("real.txt", "inside")
            .Symlink("link.txt", outside.Full("secret.txt"))
            .Symlink("linked-dir", outside.Full("dir"));

        var transcript = AgentTranscript.Capture(output =>
        {
            var files = RepositoryFiles.List(repository.Root, output, CancellationToken.None);
            Assert.Equal(["real.txt"], files.Paths);
            Assert.Equal(["real.txt"], files.ReadTextFiles(CancellationToken.None).Select(f => f.Path));
        });

        Assert.Contains("skipped symlink link.txt", transcript.Logs);
        Assert.Contains("skipped symlink linked-dir", transcript.Logs);
    }

    [Fact]
    public void ReadTextFiles_BinaryFile_IsListedButNotRead()
    {
        var binary = new byte[100];
        binary[50] = 0;
        binary[10] = (byte)'A';
        repository.WriteBytes("image.png", binary).Write("readme.md", "hello");

        var transcript = AgentTranscript.Capture(output =>
        {
            var files = RepositoryFiles.List(repository.Root, output, CancellationToken.None);
            Assert.True(files.Exists("image.png"));
            Assert.Equal(["readme.md"], files.ReadTextFiles(CancellationToken.None).Select(f => f.Path));
            Assert.Equal(1, files.FilesRead);
        });

        Assert.Contains("read 1 text files; skipped 1 binary files", transcript.Logs);
    }

    [Fact]
    public void ReadTextFiles_NulByteAfterProbeWindow_IsReadAsText()
    {
        var content = Encoding.UTF8.GetBytes(new string('a', 9000) + "\0");

        repository.WriteBytes("late-nul.txt", content);

        Assert.Single(ReadAll());
    }

    [Fact]
    public void ReadTextFiles_OversizedFile_IsSkippedWithWarning()
    {
        repository.Write("big.txt", new string('x', 2048)).Write("small.txt", "ok");

        var transcript = AgentTranscript.Capture(output =>
        {
            var files = RepositoryFiles.List(repository.Root, output, CancellationToken.None, maxFileBytes: 1024);
            Assert.True(files.Exists("big.txt"));
            Assert.Equal(["small.txt"], files.ReadTextFiles(CancellationToken.None).Select(f => f.Path));
        });

        Assert.Contains("skipped big.txt: larger than 1 KiB", transcript.Logs);
    }

    [Fact]
    public void List_MoreFilesThanLimit_StopsWithWarning()
    {
        for (var i = 0; i < 5; i++)
            repository.Write($"f{i}.txt", "x");

        var transcript = AgentTranscript.Capture(output =>
            Assert.Equal(["f0.txt", "f1.txt", "f2.txt"], RepositoryFiles.List(repository.Root, output, CancellationToken.None, maxFiles: 3).Paths));

        Assert.Contains(transcript.Logs, l => l.StartsWith("stopped listing after 3 files", StringComparison.Ordinal));
    }

    [Fact]
    public void ReadTextFiles_Utf8ByteOrderMark_IsStripped()
    {
        repository.WriteBytes("bom.txt", [.. Encoding.UTF8.Preamble, .. "first\r\nsecond"u8]);

        var file = Assert.Single(ReadAll());

        Assert.Equal(["first", "second"], file.Lines);
    }

    [Fact]
    public void LogicalLines_BackslashContinuation_JoinsOntoStartingLine()
    {
        var file = new TextFile("Dockerfile", "FROM a\nRUN curl x \\\n  | sh\nUSER app");

        Assert.Equal([(1, "FROM a"), (2, "RUN curl x    | sh"), (4, "USER app")], file.LogicalLines());
    }

    [Fact]
    public void ReadTextFiles_CancelledToken_Throws()
    {
        repository.Write("a.txt", "x");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        AgentTranscript.Capture(output =>
        {
            var files = RepositoryFiles.List(repository.Root, output, CancellationToken.None);
            Assert.Throws<OperationCanceledException>(() => files.ReadTextFiles(cancelled.Token).ToList());
            Assert.Throws<OperationCanceledException>(() => RepositoryFiles.List(repository.Root, output, cancelled.Token));
        });
    }

    [Fact]
    public void List_MissingWorkspace_ThrowsDirectoryNotFound() =>
        AgentTranscript.Capture(output => Assert.Throws<DirectoryNotFoundException>(
            () => RepositoryFiles.List(repository.Full("missing"), output, CancellationToken.None)));

    private RepositoryFiles List()
    {
        RepositoryFiles? files = null;
        AgentTranscript.Capture(output => files = RepositoryFiles.List(repository.Root, output, CancellationToken.None));
        return files!;
    }

    private List<TextFile> ReadAll()
    {
        var result = new List<TextFile>();
        AgentTranscript.Capture(output =>
            result.AddRange(RepositoryFiles.List(repository.Root, output, CancellationToken.None).ReadTextFiles(CancellationToken.None)));
        return result;
    }
}
