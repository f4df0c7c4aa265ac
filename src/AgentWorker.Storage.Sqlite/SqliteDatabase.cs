using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// The connection factory for one database file: opens pooled connections with the durability settings
/// applied, hands out read and write sessions, and brings the schema up to date on open.
/// </summary>
internal sealed class SqliteDatabase
{
    // How long a statement waits for another process's lock: long enough to ride out its write
    // transaction (short, but each commit waits for fsync), short enough that a wedged lock surfaces
    // as an error instead of a hang. SQLite's busy handler does the waiting; Microsoft.Data.Sqlite's
    // own retry loop (150 ms sleeps up to the command timeout) gets the same bound so it adds nothing.
    private const int LockTimeoutSeconds = 10;

    private readonly string connectionString;

    // Writers of this process queue here, in order and without polling; SQLite's busy handler (which
    // sleeps and retries) is then only needed against other processes.
    private readonly SemaphoreSlim writeGate = new(1, 1);
    private volatile bool closed;

    private SqliteDatabase(string path)
    {
        Path = path;
        connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = LockTimeoutSeconds,
        }.ToString();
    }

    public string Path { get; }

    public static async Task<SqliteDatabase> OpenAsync(string path, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(fullPath)!);
        var database = new SqliteDatabase(fullPath);
        await database.UseWriteAheadLogAsync(cancellationToken).ConfigureAwait(false);
        await database.MigrateAsync(timeProvider, cancellationToken).ConfigureAwait(false);
        return database;
    }

    public async Task<SqliteConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(closed, this);
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            // These settings belong to the connection, not the file. A pooled connection keeps them, but
            // there is no telling a fresh one from a reused one, and re-applying them costs no I/O.
            // synchronous=FULL: a commit returns only after the WAL is on disk, so an enqueued job survives a power cut.
            await using var command = connection.CreateCommand();
            command.CommandText = $"PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = {LockTimeoutSeconds * 1000};";
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A consistent snapshot for reading; does not block writers.</summary>
    public Task<SqliteSession> ReadAsync(CancellationToken cancellationToken) => BeginAsync(write: false, cancellationToken);

    /// <summary>An immediate transaction: holds the database write lock until the session ends.</summary>
    public Task<SqliteSession> WriteAsync(CancellationToken cancellationToken) => BeginAsync(write: true, cancellationToken);

    /// <summary>Stops handing out connections and closes the idle pooled ones (and with them the file handles).</summary>
    public void Close()
    {
        closed = true;
        using var connection = new SqliteConnection(connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private async Task<SqliteSession> BeginAsync(bool write, CancellationToken cancellationToken)
    {
        var gate = write ? writeGate : null;
        if (gate is not null)
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        SqliteConnection? connection = null;
        try
        {
            connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return SqliteSession.Begin(connection, write, gate);
        }
        catch
        {
            if (connection is not null)
                await connection.DisposeAsync().ConfigureAwait(false);
            gate?.Release();
            throw;
        }
    }

    private async Task UseWriteAheadLogAsync(CancellationToken cancellationToken)
    {
        // WAL lets readers (dashboard, stats) work while a worker writes. The mode is stored in the file,
        // so it is set once here; it cannot be changed inside a transaction, hence a plain connection.
        await using var connection = await OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL;";
        var mode = (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"SQLite queue {Path}: the file does not support WAL journal mode (got '{mode}'); use a local filesystem");
    }

    private async Task MigrateAsync(TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        // One immediate transaction: processes starting together migrate one after the other, and a
        // migration that fails half-way leaves the previous version intact.
        await using var session = await WriteAsync(cancellationToken).ConfigureAwait(false);
        await session.ExecuteAsync(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
            [],
            cancellationToken).ConfigureAwait(false);
        var current = await session.ScalarAsync<long>("SELECT max(version) FROM schema_version", [], cancellationToken).ConfigureAwait(false);
        var latest = SqliteSchema.Migrations.Count;
        if (current > latest)
            throw new InvalidOperationException($"SQLite queue {Path}: schema version {current} is newer than this build understands ({latest}); upgrade agent-worker");
        for (var version = (int)current + 1; version <= latest; version++)
        {
            await session.ExecuteAsync(SqliteSchema.Migrations[version - 1], [], cancellationToken).ConfigureAwait(false);
            await session.ExecuteAsync(
                "INSERT INTO schema_version (version, applied_at) VALUES ($version, $at)",
                [("$version", version), ("$at", timeProvider.GetUtcNow().ToUnixTimeMilliseconds())],
                cancellationToken).ConfigureAwait(false);
        }
        await session.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
