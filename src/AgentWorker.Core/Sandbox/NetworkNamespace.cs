using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// A network namespace the worker builds for one run (it needs CAP_SYS_ADMIN: a root worker): only <c>lo</c>, up, with the
/// worker's listening sockets already bound on 127.0.0.1 in it. The run's launcher is started inside it (see
/// <see cref="Execution.ProcessRunner"/>) and bubblewrap keeps it, so the agent connects to those ports and the worker
/// accepts on them directly: nothing of the worker runs inside the sandbox, and no relay sits between.
/// </summary>
internal sealed partial class NetworkNamespace : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private const uint SiocGetFlags = 0x8913;
    private const uint SiocSetFlags = 0x8914;
    private const short InterfaceUp = 0x1;

    private NetworkNamespace(SafeFileHandle handle, IReadOnlyList<Socket> listeners) => (Handle, Listeners) = (handle, listeners);

    /// <summary>An open reference to the namespace (what <c>setns</c> takes).</summary>
    public SafeFileHandle Handle { get; }

    /// <summary>Listening on 127.0.0.1 inside, in the order of the ports asked for.</summary>
    public IReadOnlyList<Socket> Listeners { get; }

    /// <summary>Builds the namespace on a thread of its own (a namespace change belongs to the thread that makes it).</summary>
    public static NetworkNamespace Create(IReadOnlyList<int> ports)
    {
        NetworkNamespace? created = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                created = CreateOnThisThread(ports);
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        { IsBackground = true, Name = "agent-worker network namespace" };
        thread.Start();
        thread.Join();
        return created ?? throw new SandboxException($"cannot build the agent's network namespace: {error?.Message}");
    }

    /// <summary>
    /// Whether this process may build network namespaces (CAP_SYS_ADMIN: root, unless a container or unit took the capability
    /// away). Tried once, on a thread that ends right after, so the namespace goes with it.
    /// </summary>
    public static bool CanCreate => Probe.Value;

    private static readonly Lazy<bool> Probe = new(() =>
    {
        var created = false;
        var thread = new Thread(() => created = Native.Unshare(CloneNewNet) == 0) { IsBackground = true, Name = "agent-worker network namespace probe" };
        thread.Start();
        thread.Join();
        return created;
    });

    /// <summary>Moves the calling thread into the namespace <paramref name="handle"/> refers to.</summary>
    public static void Enter(SafeFileHandle handle)
    {
        if (Native.SetNamespace(handle, CloneNewNet) != 0)
            throw new SandboxException($"cannot enter a network namespace: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>The calling thread's current network namespace.</summary>
    public static SafeFileHandle OfThisThread()
    {
        var handle = Native.Open("/proc/thread-self/ns/net", 0x80000 /* O_RDONLY | O_CLOEXEC */);
        return handle.IsInvalid ? throw new SandboxException($"cannot open /proc/thread-self/ns/net: {Marshal.GetLastPInvokeErrorMessage()}") : handle;
    }

    private static NetworkNamespace CreateOnThisThread(IReadOnlyList<int> ports)
    {
        if (Native.Unshare(CloneNewNet) != 0)
            throw new SandboxException($"unshare: {Marshal.GetLastPInvokeErrorMessage()}");
        BringLoopbackUp();
        List<Socket> listeners = [];
        try
        {
            foreach (var port in ports)
            {
                var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listeners.Add(listener);
                listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
                listener.Listen(128);
            }
            return new NetworkNamespace(OfThisThread(), listeners);
        }
        catch
        {
            listeners.ForEach(l => l.Dispose());
            throw;
        }
    }

    private static unsafe void BringLoopbackUp()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var request = default(InterfaceRequest);
        "lo"u8.CopyTo(new Span<byte>(request.Name, 16));
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        if (Native.Ioctl(fd, SiocGetFlags, ref request) != 0)
            throw new SandboxException($"cannot read the flags of lo: {Marshal.GetLastPInvokeErrorMessage()}");
        request.Flags |= InterfaceUp;
        if (Native.Ioctl(fd, SiocSetFlags, ref request) != 0)
            throw new SandboxException($"cannot bring lo up: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    public void Dispose()
    {
        foreach (var listener in Listeners)
            listener.Dispose();
        Handle.Dispose();
    }

    /// <summary>struct ifreq: the name, then a 24-byte union whose first member here is the flags.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct InterfaceRequest
    {
        public fixed byte Name[16];
        public short Flags;
        public fixed byte Rest[22];
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
        public static partial int Unshare(int flags);

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        public static partial int SetNamespace(SafeFileHandle fd, int type);

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial SafeFileHandle Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
        public static partial int Ioctl(int fd, nuint request, ref InterfaceRequest value);
    }
}
