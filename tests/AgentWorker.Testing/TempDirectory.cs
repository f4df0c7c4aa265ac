using System.Diagnostics;

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
        if (!Directory.Exists(Path))
            return;
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A worker the test killed leaves its attempts' tmpfs mounts (the next worker's sweep would detach them).
            DetachMounts();
            Directory.Delete(Path, recursive: true);
        }
    }

    private void DetachMounts()
    {
        var mounts = File.ReadLines("/proc/self/mountinfo").Select(line => line.Split(' ')[4])
            .Where(mount => mount.StartsWith(Path + "/", StringComparison.Ordinal))
            .OrderByDescending(mount => mount.Length);
        foreach (var mount in mounts)
        {
            using var umount = Process.Start("umount", ["--lazy", mount]);
            umount.WaitForExit();
        }
    }
}
