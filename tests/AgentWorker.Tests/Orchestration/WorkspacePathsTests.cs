using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Orchestration;

public sealed class WorkspacePathsTests : IDisposable
{
    private readonly TempDirectory _ws = new();

    public WorkspacePathsTests()
    {
        Directory.CreateDirectory(_ws.Combine("src", "deep"));
        File.WriteAllText(_ws.Combine("src", "deep", "file.txt"), "x");
        File.CreateSymbolicLink(_ws.Combine("up"), "src/deep");
        File.CreateSymbolicLink(_ws.Combine("src", "back"), "../src/deep/file.txt");
        File.CreateSymbolicLink(_ws.Combine("inside-abs"), "/workspace/src");
        File.CreateSymbolicLink(_ws.Combine("host-abs"), "/etc");
        File.CreateSymbolicLink(_ws.Combine("src", "climb"), "../..");
        File.CreateSymbolicLink(_ws.Combine("loop-a"), "loop-b");
        File.CreateSymbolicLink(_ws.Combine("loop-b"), "loop-a");
    }

    private string Resolve(string path, bool allowRoot = false) => WorkspacePaths.Resolve(_ws.Path, path, "path", allowRoot).Relative;

    private string Denied(string path)
    {
        var e = Assert.Throws<TaskRefusedException>(() => Resolve(path, allowRoot: true));
        Assert.Equal(ErrorCode.PolicyDenied, e.Code);
        return e.Message;
    }

    [Theory]
    [InlineData("src/deep/file.txt", "src/deep/file.txt")]
    [InlineData("./src//deep/./file.txt", "src/deep/file.txt")]
    [InlineData("/workspace/src/deep/file.txt", "src/deep/file.txt")]
    [InlineData("up/file.txt", "src/deep/file.txt")]
    [InlineData("src/back", "src/deep/file.txt")]
    [InlineData("inside-abs/deep", "src/deep")]
    [InlineData("src/new/not-yet.txt", "src/new/not-yet.txt")]
    public void Resolve_PathInside_IsTheRealPath(string path, string expected) => Assert.Equal(expected, Resolve(path));

    [Theory]
    [InlineData("", "")]
    [InlineData(".", "")]
    [InlineData("/workspace", "")]
    public void Resolve_Root_OnlyWhereAllowed(string path, string expected)
    {
        Assert.Equal(expected, Resolve(path, allowRoot: true));
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<TaskRefusedException>(() => Resolve(path)).Code);
    }

    [Theory]
    [InlineData("../etc/passwd", "'..' is not allowed")]
    [InlineData("src/../../x", "'..' is not allowed")]
    [InlineData("..", "'..' is not allowed")]
    [InlineData("/etc/passwd", "outside the workspace")]
    [InlineData("/workspacex/file", "outside the workspace")]
    [InlineData("host-abs/passwd", "symlink 'host-abs' -> '/etc'")]
    [InlineData("host-abs", "symlink 'host-abs' -> '/etc'")]
    [InlineData("src/climb/etc", "leads out of the workspace through a symlink")]
    [InlineData("loop-a", "too many levels of symlinks")]
    [InlineData("src/file\0.txt", "NUL byte")]
    public void Resolve_PathLeaving_IsDenied(string path, string because) =>
        Assert.Contains(because, Denied(path), StringComparison.Ordinal);

    [Theory]
    [InlineData("main")]
    [InlineData("session-1.2_x")]
    public void WorkspaceDirectory_PlainName_IsUnderTheRoot(string name) =>
        Assert.Equal(Path.Combine("/root/ws", name), WorkspacePaths.WorkspaceDirectory("/root/ws", name));

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("/etc")]
    [InlineData("a b")]
    public void WorkspaceDirectory_OtherName_IsDenied(string name) =>
        Assert.Equal(ErrorCode.PolicyDenied, Assert.Throws<TaskRefusedException>(() => WorkspacePaths.WorkspaceDirectory("/root/ws", name)).Code);

    public void Dispose() => _ws.Dispose();
}
