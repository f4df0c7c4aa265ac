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

    public static IReadOnlyList<int> ReadPids(string file) =>
        [.. File.ReadAllLines(file).Where(l => l.Trim().Length > 0).Select(l => int.Parse(l.Trim(), System.Globalization.CultureInfo.InvariantCulture))];
}
