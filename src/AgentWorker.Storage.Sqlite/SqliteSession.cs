using Microsoft.Data.Sqlite;

namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// One connection with one open transaction. Disposing without <see cref="CommitAsync"/> rolls back,
/// so a method that throws half-way (a lost lease, a cancelled token) leaves no partial change behind.
/// </summary>
internal sealed class SqliteSession : IAsyncDisposable
{
    private readonly SqliteConnection connection;
    private readonly SqliteTransaction transaction;
    private readonly SemaphoreSlim? writeGate;

    private SqliteSession(SqliteConnection connection, SqliteTransaction transaction, SemaphoreSlim? writeGate)
    {
        this.connection = connection;
        this.transaction = transaction;
        this.writeGate = writeGate;
    }

    /// <summary>Starts a transaction on an open connection; releases <paramref name="writeGate"/> (already taken) on dispose.</summary>
    public static SqliteSession Begin(SqliteConnection connection, bool write, SemaphoreSlim? writeGate)
    {
        // BEGIN IMMEDIATE takes the database write lock up front, so two processes can never both read
        // "job X is free" and then both claim it; a deferred transaction is enough for a consistent read.
        var transaction = connection.BeginTransaction(deferred: !write);
        return new SqliteSession(connection, transaction, writeGate);
    }

    public Task CommitAsync(CancellationToken cancellationToken) => transaction.CommitAsync(cancellationToken);

    public async Task<int> ExecuteAsync(string sql, IReadOnlyList<(string Name, object? Value)> parameters, CancellationToken cancellationToken)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The first column of the first row, or default when there is no row or it is NULL.</summary>
    public async Task<T?> ScalarAsync<T>(string sql, IReadOnlyList<(string Name, object? Value)> parameters, CancellationToken cancellationToken)
    {
        await using var command = Command(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && !reader.IsDBNull(0)
            ? reader.GetFieldValue<T>(0)
            : default;
    }

    public async Task<List<T>> QueryAsync<T>(
        string sql,
        IReadOnlyList<(string Name, object? Value)> parameters,
        Func<SqliteDataReader, T> map,
        CancellationToken cancellationToken)
    {
        await using var command = Command(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            rows.Add(map(reader));
        return rows;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await transaction.DisposeAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            writeGate?.Release();
        }
    }

    private SqliteCommand Command(string sql, IReadOnlyList<(string Name, object? Value)> parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }
}
