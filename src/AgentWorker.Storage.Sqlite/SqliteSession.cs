using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// Statements run inside one open transaction. Synchronous on purpose: Microsoft.Data.Sqlite's async methods run
/// synchronously anyway, and the write path runs many short statements per job, where async state machines would be
/// most of the cost. Disposing a read session ends its transaction; write sessions belong to a
/// <see cref="SqliteDatabase"/> group commit, which commits or rolls back.
/// </summary>
internal sealed class SqliteSession : IDisposable
{
    private readonly SqliteConnection connection;
    private readonly SqliteTransaction transaction;

    // Write sessions reuse their connection's commands, and with them the prepared statements: preparing is a
    // large share of a short statement's cost.
    private readonly Dictionary<string, SqliteCommand>? prepared;

    private SqliteSession(SqliteConnection connection, SqliteTransaction transaction, Dictionary<string, SqliteCommand>? prepared)
    {
        this.connection = connection;
        this.transaction = transaction;
        this.prepared = prepared;
    }

    /// <summary>Facts about the transaction that several operations of one group commit may want to know only once.</summary>
    public Dictionary<string, object> Scratch { get; } = new(StringComparer.Ordinal);

    /// <summary>A consistent snapshot for reading on <paramref name="connection"/>, which the session owns and closes.</summary>
    public static SqliteSession BeginRead(SqliteConnection connection) =>
        new(connection, connection.BeginTransaction(deferred: true), prepared: null);

    /// <summary>
    /// An immediate transaction on the long-lived write connection, whose commands are cached in <paramref name="prepared"/>.
    /// BEGIN IMMEDIATE takes the database write lock up front, so two processes can never both read "job X is free" and
    /// then both claim it.
    /// </summary>
    public static SqliteSession BeginWrite(SqliteConnection connection, Dictionary<string, SqliteCommand> prepared) =>
        new(connection, connection.BeginTransaction(deferred: false), prepared);

    public void Commit() => transaction.Commit();

    public void Rollback() => transaction.Rollback();

    public int Execute(string sql, IReadOnlyList<(string Name, object? Value)> parameters)
    {
        var command = Command(sql, parameters);
        try
        {
            return command.ExecuteNonQuery();
        }
        finally
        {
            Done(command);
        }
    }

    /// <summary>The first column of the first row, or default when there is no row or it is NULL.</summary>
    public T? Scalar<T>(string sql, IReadOnlyList<(string Name, object? Value)> parameters)
    {
        var command = Command(sql, parameters);
        try
        {
            using var reader = command.ExecuteReader();
            return reader.Read() && !reader.IsDBNull(0) ? reader.GetFieldValue<T>(0) : default;
        }
        finally
        {
            Done(command);
        }
    }

    public List<T> Query<T>(string sql, IReadOnlyList<(string Name, object? Value)> parameters, Func<SqliteDataReader, T> map)
    {
        var command = Command(sql, parameters);
        try
        {
            using var reader = command.ExecuteReader();
            var rows = new List<T>();
            while (reader.Read())
                rows.Add(map(reader));
            return rows;
        }
        finally
        {
            Done(command);
        }
    }

    /// <summary>Ends a read session: its transaction and its pooled connection.</summary>
    public void Dispose()
    {
        if (prepared is not null)
            return;
        transaction.Dispose();
        connection.Dispose();
    }

    /// <summary>Ends a write session's transaction object after the group commit committed or rolled it back.</summary>
    public void End() => transaction.Dispose();

    private SqliteCommand Command(string sql, IReadOnlyList<(string Name, object? Value)> parameters)
    {
        SqliteCommand? command = null;
        if (prepared is null || !prepared.Remove(sql, out command))
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
        }
        command.Transaction = transaction;
        command.Parameters.Clear();
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    // Taken out of the cache while in use, so a statement run while another one's reader is open gets its own command.
    private void Done(SqliteCommand command)
    {
        if (prepared is null || !prepared.TryAdd(command.CommandText, command))
            command.Dispose();
    }
}
