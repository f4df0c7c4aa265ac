using System.Text;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// The <c>/etc</c> a sandbox sees, bound as one prepared directory instead of a bind per file: the stub passwd, group
/// and hosts, copies of the few small host files programs read (time zone, name service switch, the dynamic linker's
/// cache and config), mount points for the host directories still bound live over it (certificates, alternatives), and
/// empty network files: no network mode has a name server inside (the egress proxy resolves names). A copied host file that changed (a package install
/// rewrites the linker cache) gives the next run a fresh directory; the check is a stat per file.
/// </summary>
internal sealed class SandboxEtc(string? parent)
{
    /// <summary>Host directories bound read-only over the prepared /etc, so their content is always the host's.</summary>
    public static readonly IReadOnlyList<string> LiveDirectories = ["/etc/ssl", "/etc/ca-certificates", "/etc/alternatives", "/etc/ld.so.conf.d", "/etc/gitconfig.d"];

    /// <summary>Empty in every run: names are resolved by the egress proxy, never inside.</summary>
    public static readonly IReadOnlyList<string> NetworkFiles = ["/etc/resolv.conf", "/etc/gai.conf", "/etc/host.conf"];

    private static readonly string[] CopiedFiles = ["/etc/localtime", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf"];

    private const int Uid = BubblewrapSandbox.InsideUid;

    private readonly Lock _lock = new();
    private (string Stamp, string Path)? _current;

    /// <summary>The prepared directory for the host's current files (built on first use and after a copied file changed).</summary>
    public string Current()
    {
        var stamp = Stamp();
        lock (_lock)
        {
            if (_current is { } current && current.Stamp == stamp)
                return current.Path;
            List<(string Name, byte[]? Content)> entries =
            [
                ("passwd", Encoding.UTF8.GetBytes($"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nagent:x:{Uid}:{Uid}:agent:{BubblewrapSandbox.InsideHome}:/bin/sh\n")),
                ("group", Encoding.UTF8.GetBytes($"root:x:0:\nagent:x:{Uid}:\n")),
                ("hosts", Encoding.UTF8.GetBytes(BubblewrapSandbox.Hosts)),
            ];
            // Read through symlinks, as a bind of the path would (localtime points into /usr/share/zoneinfo).
            entries.AddRange(CopiedFiles.Where(File.Exists).Select(file => (Path.GetFileName(file), (byte[]?)File.ReadAllBytes(file))));
            entries.AddRange(NetworkFiles.Select(file => (Path.GetFileName(file), (byte[]?)[])));
            entries.AddRange(LiveDirectories.Where(Directory.Exists).Select(dir => (Path.GetFileName(dir), (byte[]?)null)));
            var path = HostFiles.ContentDirectory(parent, "etc", entries);
            _current = (stamp, path);
            return path;
        }
    }

    private static string Stamp() => string.Join('|', CopiedFiles.Select(file =>
    {
        var info = new FileInfo(file);
        var target = info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
        return target.Exists ? $"{target.FullName}:{target.LastWriteTimeUtc.Ticks}:{target.Length}" : "-";
    }).Concat(LiveDirectories.Select(dir => Directory.Exists(dir) ? "d" : "-")));
}
