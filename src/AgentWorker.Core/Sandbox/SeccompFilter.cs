using System.Runtime.InteropServices;

namespace AgentWorker.Core.Sandbox;

/// <summary>
/// Builds the seccomp filter agents run under with libseccomp (the library bubblewrap users such as
/// Flatpak rely on), exported as the BPF program bubblewrap loads with <c>--seccomp FD</c>.
/// Denied calls fail with EPERM; clone3 fails with ENOSYS so libc falls back to clone, whose flags the filter can see.
/// </summary>
internal static partial class SeccompFilter
{
    private const uint ActAllow = 0x7fff0000;
    private const int Eperm = 1;
    private const int Enosys = 38;
    private const ulong NamespaceFlags = 0x10000000 | 0x20000000 | 0x40000000 | 0x04000000 | 0x08000000 | 0x00020000 | 0x02000000 | 0x00000080;

    /// <summary>Debugging other processes, kernel keyrings, eBPF, io_uring, perf, and (re)mounting or entering namespaces.</summary>
    public static readonly IReadOnlyList<string> Denied =
    [
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        "keyctl", "add_key", "request_key",
        "bpf", "perf_event_open", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
        "unshare", "setns",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
        "open_by_handle_at", "name_to_handle_at", "personality", "quotactl",
    ];

    /// <summary>Writes the BPF program to <paramref name="path"/> (atomically, so concurrent workers never read half a file).</summary>
    public static void Write(string path)
    {
        var context = Native.Init(ActAllow);
        if (context == IntPtr.Zero)
            throw new InvalidOperationException("seccomp_init failed");
        try
        {
            foreach (var name in Denied)
            {
                var syscall = Native.ResolveName(name);
                // Names unknown to this kernel/architecture have nothing to deny.
                if (syscall >= 0)
                    Check(Native.RuleAddArray(context, Errno(Eperm), syscall, 0, null), name);
            }
            Check(Native.RuleAddArray(context, Errno(Enosys), Native.ResolveName("clone3"), 0, null), "clone3");
            // vsock talks to the hypervisor, and network namespaces do not separate it.
            var vsock = new ArgCompare { Arg = 0, Op = CompareEqual, DatumA = AddressFamilyVsock, DatumB = 0 };
            Check(Native.RuleAddArray(context, Errno(Eperm), Native.ResolveName("socket"), 1, [vsock]), "socket");
            // clone with any namespace flag: new namespaces only come from bubblewrap, before the filter is loaded.
            var cloneSyscall = Native.ResolveName("clone");
            foreach (var flag in SingleFlags(NamespaceFlags))
            {
                var deny = new ArgCompare { Arg = 0, Op = CompareMaskedEqual, DatumA = flag, DatumB = flag };
                Check(Native.RuleAddArray(context, Errno(Eperm), cloneSyscall, 1, [deny]), "clone");
            }

            var temporary = path + $".{Environment.ProcessId}.tmp";
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write))
                Check(Native.ExportBpf(context, (int)file.SafeFileHandle.DangerousGetHandle()), "export");
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            Native.Release(context);
        }
    }

    /// <summary>True when libseccomp can be loaded (the filter can be built).</summary>
    public static bool IsAvailable()
    {
        try
        {
            var context = Native.Init(ActAllow);
            Native.Release(context);
            return context != IntPtr.Zero;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
    }

    private const int CompareEqual = 4;
    private const int CompareMaskedEqual = 7;
    private const ulong AddressFamilyVsock = 40;

    private static uint Errno(int errno) => 0x00050000u | (uint)(errno & 0xffff);

    private static IEnumerable<ulong> SingleFlags(ulong mask)
    {
        for (var bit = 0; bit < 64; bit++)
        {
            if ((mask & (1UL << bit)) != 0)
                yield return 1UL << bit;
        }
    }

    private static void Check(int result, string what)
    {
        if (result < 0)
            throw new InvalidOperationException($"seccomp: adding the rule for {what} failed ({result})");
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ArgCompare
    {
        public uint Arg;
        public int Op;
        public ulong DatumA;
        public ulong DatumB;
    }

    private static partial class Native
    {
        private const string Library = "libseccomp.so.2";

        [LibraryImport(Library, EntryPoint = "seccomp_init")]
        public static partial IntPtr Init(uint defaultAction);

        [LibraryImport(Library, EntryPoint = "seccomp_release")]
        public static partial void Release(IntPtr context);

        [LibraryImport(Library, EntryPoint = "seccomp_syscall_resolve_name", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int ResolveName(string name);

        [LibraryImport(Library, EntryPoint = "seccomp_rule_add_array")]
        public static partial int RuleAddArray(IntPtr context, uint action, int syscall, uint count, [In] ArgCompare[]? args);

        [LibraryImport(Library, EntryPoint = "seccomp_export_bpf")]
        public static partial int ExportBpf(IntPtr context, int fd);
    }
}
