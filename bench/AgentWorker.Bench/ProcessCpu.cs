using System.Globalization;

namespace AgentWorker.Bench;

/// <summary>CPU time of this process and of its finished children, for measures on a machine too loaded for wall time alone.</summary>
internal static class ProcessCpu
{
    /// <summary>
    /// From /proc/self/stat: cutime + cstime (every waited-for descendant, grandchildren included) and utime + stime.
    /// </summary>
    public static (double Children, double Self) Milliseconds()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        // Fields after the command name (which may contain spaces): utime, stime, cutime, cstime are fields 14 to 17 of the line.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        const double TickMilliseconds = 10; // USER_HZ is 100 on Linux.
        double Ticks(int field) => long.Parse(fields[field - 3], CultureInfo.InvariantCulture) * TickMilliseconds;
        return (Ticks(16) + Ticks(17), Ticks(14) + Ticks(15));
    }
}
