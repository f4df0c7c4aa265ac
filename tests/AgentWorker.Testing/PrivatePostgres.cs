using System.Diagnostics;
using System.Globalization;

namespace AgentWorker.Testing;

/// <summary>
/// A PostgreSQL cluster of the test's own (initdb in a temp dir, loopback, random port, trust auth), which the test
/// may stop and start again on the same port and data, like an operator restarting it. The server refuses to run as
/// root, so under root every server command runs as the `postgres` system user (scripts/services/postgres.sh
/// creates it), as the test script's own cluster does.
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private const string Database = "agent_worker";

    private readonly TempDirectory _dir = new("aw-pg");
    private readonly string _bin;

    private PrivatePostgres(string bin, int port)
    {
        _bin = bin;
        Port = port;
    }

    public int Port { get; }

    public string Url => DatabaseUrl(Database);

    public string DatabaseUrl(string database) => $"postgresql://postgres@127.0.0.1:{Port}/{database}";

    /// <summary>Creates an empty database of a fresh name on this server; returns the name.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"db_{Guid.NewGuid():N}"[..24];
        await ServerCommandAsync("createdb", "-h", "127.0.0.1", "-p", PortText, "-U", "postgres", name);
        return name;
    }

    private string DataDir => _dir.Combine("data");

    private static bool AsRoot => Environment.UserName == "root";

    public static async Task<PrivatePostgres> StartAsync()
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.EnumerateDirectories("/usr/lib/postgresql")
                .Select(version => Path.Combine(version, "bin"))
                .Where(bin => File.Exists(Path.Combine(bin, "initdb")))
                .OrderByDescending(bin => int.TryParse(Path.GetFileName(Path.GetDirectoryName(bin)), out var major) ? major : 0)
                .FirstOrDefault()
            : null;
        if (bin is null)
            throw new InvalidOperationException("no PostgreSQL server under /usr/lib/postgresql/*/bin: run the tests with scripts/test.sh, which installs it");
        for (var attempt = 1; ; attempt++)
        {
            var postgres = new PrivatePostgres(bin, LoopbackPort.Free());
            try
            {
                if (AsRoot)
                    await RunAsync("chown", ["postgres:", postgres._dir.Path]);
                await postgres.ServerCommandAsync("initdb", "-D", postgres.DataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8");
                await postgres.StartAgainAsync();
                await postgres.ServerCommandAsync("createdb", "-h", "127.0.0.1", "-p", postgres.PortText, "-U", "postgres", Database);
                return postgres;
            }
            catch (InvalidOperationException) when (attempt < 5)
            {
                // Most likely the port was taken between asking and binding.
                await postgres.DisposeAsync();
            }
        }
    }

    private string PortText => Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Starts the server (again) on the same port and data directory; returns once it accepts connections.</summary>
    public Task StartAgainAsync() => ServerCommandAsync(
        "pg_ctl", "-D", DataDir, "-l", _dir.Combine("server.log"), "-w", "-t", "30",
        "-o", $"-c listen_addresses=127.0.0.1 -p {PortText} -k {_dir.Path} -c fsync=off -c max_connections=100", "start");

    /// <summary>Stops the server at once (immediate mode: connections are cut, recovery runs at the next start).</summary>
    public Task StopAsync() => ServerCommandAsync("pg_ctl", "-D", DataDir, "-w", "stop", "-m", "immediate");

    private Task ServerCommandAsync(string tool, params string[] args)
    {
        var path = Path.Combine(_bin, tool);
        return AsRoot ? RunAsync("runuser", ["-u", "postgres", "--", path, .. args]) : RunAsync(path, args);
    }

    private static async Task RunAsync(string file, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', start.ArgumentList)} failed ({process.ExitCode}): {stderr}{await stdout}");
    }

    public async ValueTask DisposeAsync()
    {
        if (File.Exists(Path.Combine(DataDir, "postmaster.pid")))
        {
            try
            {
                await StopAsync();
            }
            catch (InvalidOperationException)
            {
                // Not running after all.
            }
        }
        _dir.Dispose();
    }
}
