using System.Diagnostics;
using System.Globalization;
using AgentWorker.Testing;
using Npgsql;

namespace AgentWorker.Tests.Tasks;

/// <summary>
/// A PostgreSQL cluster of the test's own (the shared one from scripts/test.sh must not be stopped), so a test can kill it
/// mid-run and start it again on the same port. Built like scripts/services/postgres.sh: initdb in a temp dir, run as the
/// `postgres` user when the tests run as root (the server refuses root), loopback only, trust auth, no fsync.
/// </summary>
public sealed class PrivatePostgres : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("aw-pg");
    private string _bin = "";

    public int Port { get; private set; }

    public string Url(string database) => $"postgresql://postgres@127.0.0.1:{Port}/{database}";

    public async Task InitializeAsync()
    {
        _bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb")))
                .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0)
                .FirstOrDefault() ?? ""
            : "";
        if (_bin.Length == 0)
            throw new InvalidOperationException("PostgreSQL server binaries not found under /usr/lib/postgresql: run the tests with scripts/test.sh, which installs postgresql");
        if (Environment.IsPrivilegedProcess)
            await RunAsync("chown", "-R", "postgres:", _dir.Path);
        await RunAsServerAsync("initdb", "-D", Data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8");
        Port = EndToEnd.WorkerProcess.FreePort();
        await StartAsync();
    }

    private string Data => _dir.Combine("data");

    public Task StartAsync() => RunAsServerAsync("pg_ctl", "-D", Data, "-l", _dir.Combine("server.log"), "-w", "-t", "30",
        "-o", $"-c listen_addresses=127.0.0.1 -p {Port} -k {_dir.Path} -c fsync=off", "start");

    /// <summary>Like a crash: no checkpoint, every connection cut.</summary>
    public Task StopAsync() => RunAsServerAsync("pg_ctl", "-D", Data, "-w", "-t", "30", "stop", "-m", "immediate");

    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"tasks_{Guid.NewGuid():N}"[..24];
        await using var admin = NpgsqlDataSource.Create(PostgresSettings(Url("postgres")));
        await using var create = admin.CreateCommand($"CREATE DATABASE {name}");
        await create.ExecuteNonQueryAsync();
        return name;
    }

    public static string PostgresSettings(string url) => Storage.Postgres.PostgresConnectionString.Parse(url).ConnectionString;

    private Task RunAsServerAsync(string program, params string[] args) =>
        Environment.IsPrivilegedProcess
            ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, program), .. args])
            : RunAsync(Path.Combine(_bin, program), args);

    private static async Task RunAsync(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr}{await stdout}");
    }

    public async Task DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Already stopped by a test that failed half-way.
        }
        _dir.Dispose();
    }
}
