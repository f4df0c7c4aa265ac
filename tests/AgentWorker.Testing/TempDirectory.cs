namespace AgentWorker.Testing;

/// <summary>A directory under /tmp (or <c>parent</c>) removed when disposed.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory(string prefix = "aw-test", string? parent = null)
    {
        Path = System.IO.Path.Combine(parent ?? System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        if (Directory.Exists(Path))
            Directory.Delete(Path, recursive: true);
    }
}
