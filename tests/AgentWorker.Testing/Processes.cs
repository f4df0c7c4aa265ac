namespace AgentWorker.Testing;

/// <summary>Process liveness by pid, as the kernel reports it.</summary>
public static class Processes
{
    /// <summary>True if <paramref name="pid"/> exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Field 3, after the parenthesised command name, is the state.
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z" && state != "X";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Live processes whose command line contains <paramref name="marker"/> as a whole argument (sandboxed pids are namespaced, so tests find survivors this way).</summary>
    public static IReadOnlyList<int> WithArgument(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                var argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (argv.Contains(marker) && IsAlive(pid))
                    found.Add(pid);
            }
            catch (IOException)
            {
            }
        }
        return found;
    }

    public static IReadOnlyList<int> ReadPids(string file) =>
        [.. File.ReadAllLines(file).Where(l => l.Trim().Length > 0).Select(l => int.Parse(l.Trim(), System.Globalization.CultureInfo.InvariantCulture))];

    /// <summary>SIGKILLs every process <see cref="WithArgument"/> finds; cleans the host up after a containment failure.</summary>
    public static void KillWithArgument(string marker)
    {
        foreach (var pid in WithArgument(marker))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                // Gone already.
            }
        }
    }

    /// <summary>A value in kB from /proc/&lt;pid&gt;/status (e.g. <c>VmRSS</c>, <c>VmHWM</c> = peak RSS), in bytes.</summary>
    public static long StatusBytes(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        var kilobytes = long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return kilobytes * 1024;
    }
}
