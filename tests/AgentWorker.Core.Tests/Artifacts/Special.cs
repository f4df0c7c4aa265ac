using System.Diagnostics;

namespace AgentWorker.Core.Tests.Artifacts;

/// <summary>Makes the entries an agent can leave that are not regular files: a FIFO, a bound unix socket, a device node (as root).</summary>
internal static class Special
{
    public static void Make(string kind, string path)
    {
        switch (kind)
        {
            case "fifo":
                Run("mkfifo", path);
                break;
            case "socket":
                // Bound by another process: .NET removes the file of a socket it bound when the socket is disposed.
                Run("python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path);
                break;
            case "device":
                // /dev/zero's numbers: a reader that opened it would never see its end.
                Run("mknod", path, "c", "1", "5");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
        Assert.True(Path.Exists(path), $"{kind} {path} not made");
    }

    private static void Run(string program, params string[] args)
    {
        using var process = Process.Start(program, args);
        process.WaitForExit();
    }
}
