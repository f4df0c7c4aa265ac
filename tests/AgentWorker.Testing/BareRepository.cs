namespace AgentWorker.Testing;

/// <summary>A bare git repository made from a <see cref="TestRepository"/>: a remote that jobs clone from and push to.</summary>
public sealed class BareRepository : IDisposable
{
    private readonly TempDirectory _dir = new("aw-bare");

    private BareRepository(TestRepository source) =>
        TestRepository.Git(_dir.Path, "clone", "--quiet", "--bare", source.Path, Path);

    public string Path => _dir.Combine("remote.git");

    public static BareRepository From(TestRepository source) => new(source);

    /// <summary>Every ref and the commit it names (<c>git for-each-ref</c>), to show a remote did not change.</summary>
    public string Refs() => TestRepository.Git(Path, "for-each-ref", "--format=%(refname) %(objectname)");

    /// <summary>The commit <paramref name="branch"/> points at, or null when it does not exist.</summary>
    public string? Head(string branch)
    {
        var line = TestRepository.Git(Path, "for-each-ref", "--format=%(objectname)", $"refs/heads/{branch}").Trim();
        return line.Length == 0 ? null : line;
    }

    public string Show(string revision, string file) => TestRepository.Git(Path, "show", $"{revision}:{file}");

    public string Log(string revision, string format) => TestRepository.Git(Path, "log", "-1", $"--format={format}", revision).Trim();

    public void Dispose() => _dir.Dispose();
}
