using System.Net;
using System.Net.Sockets;

namespace AgentWorker.Testing;

public static class LoopbackPort
{
    /// <summary>A TCP port free on 127.0.0.1 when asked (the caller's own bind is the final check).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
