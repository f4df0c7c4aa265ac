using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// The connection factory for one database file: pooled connections for reading, one long-lived connection for
/// writing, and group commit on it. Writes that arrive while a transaction is being committed wait and then go
/// together into the next transaction, so one fsync makes a whole group durable; each caller is answered only after
/// the commit that holds its write. Alone, a write runs at once on the caller's thread.
/// </summary>
internal sealed class SqliteDatabase
{
    // How long a statement waits for another process's lock: long enough to ride out its write
    // transaction (short, but each commit waits for fsync), short enough that a wedged lock surfaces
    // as an error instead of a hang. SQLite's busy handler does the waiting; Microsoft.Data.Sqlite's
    // own retry loop (150 ms sleeps up to the command timeout) gets the same bound so it adds nothing.
    private const int LockTimeoutSeconds = 10;

    // Bounds one transaction, so a burst of writers cannot make one commit (and the write lock other processes wait
    // for) arbitrarily long.
    private const int MaxGroup = 256;

    private readonly string connectionString;
    private readonly string writerConnectionString;

    // Longest a group waits for more writes to join it (see Gather); PostgreSQL's commit_delay does the same.
    private static readonly TimeSpan GatherLimit = TimeSpan.FromMilliseconds(1);

    // A plain object: the gathering group waits on it with Monitor.Wait.
    private readonly object gate = new();
    private readonly Queue<Write> pending = new();
    private bool writing;
    private bool closed;

    // How many writes the next group may expect: those the last group answered (their callers' next writes) plus those
    // already waiting when it did. While a group gathers, gatherTarget is how many it waits for.
    private int expected;
    private int gatherTarget;

    // Used by one group at a time (the one that set `writing`), so neither needs a lock of its own.
    private SqliteConnection? writer;
    private readonly Dictionary<string, SqliteCommand> prepared = new(StringComparer.Ordinal);

    private SqliteDatabase(string path)
    {
        Path = path;
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = LockTimeoutSeconds,
        };
        connectionString = builder.ToString();
        // The writer keeps its prepared statements for its whole life, so it is never handed back to the pool.
        builder.Pooling = false;
        writerConnectionString = builder.ToString();
    }

    public string Path { get; }

    public static async Task<SqliteDatabase> OpenAsync(string path, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(fullPath)!);
        var database = new SqliteDatabase(fullPath);
        await database.UseWriteAheadLogAsync(cancellationToken).ConfigureAwait(false);
        await database.WriteAsync(session => SqliteSchema.Migrate(session, fullPath, timeProvider), cancellationToken).ConfigureAwait(false);
        return database;
    }

    public async Task<SqliteConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(closed, this);
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            Configure(connection);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A consistent snapshot for reading; does not block writers.</summary>
    public async Task<SqliteSession> ReadAsync(CancellationToken cancellationToken) =>
        SqliteSession.BeginRead(await OpenConnectionAsync(cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// Runs <paramref name="operation"/> in an immediate transaction, together with whatever other writes are waiting,
    /// and returns its result once that transaction committed. An operation that throws is undone alone and its caller
    /// gets the exception; the others still commit. For that, a group in which one operation threw is rolled back and run
    /// again in a new transaction with a savepoint around each operation (another process may write in between), so
    /// <paramref name="operation"/> may run twice: it must change nothing outside the transaction, or undo what its earlier
    /// run changed. <paramref name="cancellationToken"/> counts until the operation starts; once it runs it finishes, so its
    /// outcome is never left unknown.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<SqliteSession, T> operation, CancellationToken cancellationToken)
    {
        var write = new Write<T>(operation, cancellationToken);
        bool lead;
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(closed, this);
            pending.Enqueue(write);
            lead = !writing;
            writing = true;
            if (gatherTarget > 0 && pending.Count >= gatherTarget)
                Monitor.Pulse(gate);
        }
        if (lead)
            Lead();
        return write.Task;
    }

    /// <summary>Stops handing out connections and closes the writer and the idle pooled ones (and with them the file handles).</summary>
    public void Close()
    {
        bool idle;
        lock (gate)
        {
            closed = true;
            idle = !writing;
            Monitor.PulseAll(gate);
        }
        // A group in progress closes the writer when it is done.
        if (idle)
            CloseWriter();
        using var connection = new SqliteConnection(connectionString);
        SqliteConnection.ClearPool(connection);
    }

    /// <summary>
    /// Commits one group on this thread, then leaves the next group (writes that queued meanwhile) to the thread pool,
    /// so the caller that happened to lead gets its answer without waiting for everyone else's.
    /// </summary>
    private void Lead()
    {
        Write[] group;
        bool closing;
        lock (gate)
        {
            Gather();
            group = new Write[Math.Min(pending.Count, MaxGroup)];
            for (var i = 0; i < group.Length; i++)
                group[i] = pending.Dequeue();
            closing = closed;
        }
        if (closing)
        {
            foreach (var write in group)
                write.Fail(new ObjectDisposedException(nameof(SqliteDatabase)));
        }
        else
        {
            Commit(group);
        }

        lock (gate)
        {
            // A lone write (nobody else around) expects nothing, so the next one starts at once.
            expected = group.Length < 2 ? 0 : group.Length + pending.Count;
            if (pending.Count > 0)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static database => database.Lead(), this, preferLocal: false);
                return;
            }
            writing = false;
            closing = closed;
        }
        if (closing)
            CloseWriter();
    }

    /// <summary>
    /// Under load, waits (up to <see cref="GatherLimit"/>, holding <see cref="gate"/>) until the writes the next group may
    /// expect are pending. The callers the last group just answered are about to send their next write; starting the
    /// next commit at once would take only the first few of them and make the rest wait a whole fsync for the one after.
    /// </summary>
    private void Gather()
    {
        if (expected < 2 || pending.Count >= expected)
            return;
        var target = Math.Min(expected, MaxGroup);
        var started = Stopwatch.GetTimestamp();
        gatherTarget = target;
        try
        {
            // Monitor.Wait counts whole milliseconds, so the limit is the unit; a wait woken early by a pulse is the usual case.
            while (pending.Count < target && !closed && Stopwatch.GetElapsedTime(started) < GatherLimit)
                Monitor.Wait(gate, GatherLimit);
        }
        finally
        {
            gatherTarget = 0;
        }
    }

    private void Commit(Write[] group)
    {
        SqliteSession? session = null;
        (Write Write, Exception Error)? failed = null;
        try
        {
            writer ??= OpenWriter();
            session = SqliteSession.BeginWrite(writer, prepared);
            failed = RunTogether(session, group);
            if (failed is not null)
            {
                // One operation threw, and its half-done changes are mixed with the others'. The group starts over in a new
                // transaction with each operation inside a savepoint, so the one that throws again is undone alone. The
                // write lock is let go in between: another process may write first, and the operations see what it wrote.
                var first = session;
                session = null;
                RollBack(first);
                first.End();
                session = SqliteSession.BeginWrite(writer, prepared);
                RunIsolated(session, group);
            }
            session.Commit();
        }
        catch (Exception error)
        {
            // Nothing of the group is stored: everyone not yet answered gets the error (the operation that threw first, its
            // own). The writer may be in any state (a failed commit, a lost file), so the next group starts on a fresh
            // connection.
            failed?.Write.Fail(failed.Value.Error);
            foreach (var write in group)
                write.Fail(error);
            if (session is not null)
                RollBack(session);
            session?.End();
            session = null;
            CloseWriter();
            return;
        }
        session.End();
        foreach (var write in group)
            write.Publish();
    }

    private static void RollBack(SqliteSession session)
    {
        try
        {
            session.Rollback();
        }
        catch (Exception error) when (error is SqliteException or InvalidOperationException)
        {
            // Already rolled back by SQLite itself (a failed COMMIT does that, and so may a full disk or an I/O error in
            // any statement), or the connection is gone.
        }
    }

    /// <summary>
    /// Runs the group's operations one after the other with nothing between them, and returns the first that throws (the
    /// rest do not run). Operations rarely throw, and a savepoint around each would make SQLite copy the pages it touches
    /// into a statement journal, spilled to a temporary file once it grows: together with the statements themselves,
    /// a quarter of the cost of a claim or a completion (bench/README.md).
    /// </summary>
    private static (Write Write, Exception Error)? RunTogether(SqliteSession session, Write[] group)
    {
        foreach (var write in group)
        {
            if (write.Cancelled)
                continue;
            try
            {
                write.Run(session);
            }
            catch (Exception error)
            {
                return (write, error);
            }
        }
        return null;
    }

    /// <summary>Runs every operation again, each inside a savepoint; an operation that throws is undone alone and its caller gets the error.</summary>
    private static void RunIsolated(SqliteSession session, Write[] group)
    {
        foreach (var write in group)
        {
            // One that ran already is not dropped now for a cancel that came since: once an operation runs, it finishes.
            if (!write.Started && write.Cancelled)
                continue;
            session.Execute("SAVEPOINT write", []);
            try
            {
                write.Run(session);
                session.Execute("RELEASE write", []);
            }
            catch (Exception error)
            {
                session.Execute("ROLLBACK TO write", []);
                session.Execute("RELEASE write", []);
                write.Fail(error);
            }
        }
    }

    private SqliteConnection OpenWriter()
    {
        var connection = new SqliteConnection(writerConnectionString);
        try
        {
            connection.Open();
            Configure(connection);
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private void CloseWriter()
    {
        foreach (var command in prepared.Values)
            command.Dispose();
        prepared.Clear();
        writer?.Dispose();
        writer = null;
    }

    private static void Configure(SqliteConnection connection)
    {
        // These settings belong to the connection, not the file. A pooled connection keeps them, but
        // there is no telling a fresh one from a reused one, and re-applying them costs no I/O.
        // synchronous=FULL: a commit returns only after the WAL is on disk, so an enqueued job survives a power cut.
        using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = {LockTimeoutSeconds * 1000};";
        command.ExecuteNonQuery();
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

    /// <summary>One caller's operation in a group commit; its result is published only after the group committed.</summary>
    private abstract class Write
    {
        public abstract bool Cancelled { get; }

        /// <summary>Whether the operation ran (or began to) in this group, whatever came of it.</summary>
        public bool Started { get; protected set; }

        public abstract void Run(SqliteSession session);

        public abstract void Publish();

        public abstract void Fail(Exception error);
    }

    private sealed class Write<T>(Func<SqliteSession, T> operation, CancellationToken cancellationToken) : Write
    {
        // Continuations run on the pool, never inline on the thread committing the next group.
        private readonly TaskCompletionSource<T> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? result;
        private bool ran;

        public Task<T> Task => completion.Task;

        public override bool Cancelled
        {
            get
            {
                if (!cancellationToken.IsCancellationRequested)
                    return false;
                completion.TrySetCanceled(cancellationToken);
                return true;
            }
        }

        public override void Run(SqliteSession session)
        {
            // A run again (see Commit) answers with what the second run gives.
            Started = true;
            ran = false;
            result = operation(session);
            ran = true;
        }

        public override void Publish()
        {
            if (ran)
                completion.TrySetResult(result!);
        }

        public override void Fail(Exception error) => completion.TrySetException(error);
    }
}
