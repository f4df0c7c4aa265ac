using System.Text.RegularExpressions;
using Npgsql;

namespace AgentWorker.Storage.Postgres;

/// <summary>
/// Versioned schema inside one PostgreSQL schema (namespace). Migration <c>n</c> (1-based) brings it from version
/// <c>n - 1</c> to <c>n</c>; applied migrations are recorded in <c>schema_version</c>. Never edit a released
/// migration, append a new one.
/// </summary>
internal static partial class PostgresSchema
{
    public static readonly IReadOnlyList<string> Migrations =
    [
        """
        -- seq gives FIFO order among equal priorities and "newest first" for listings.
        CREATE TABLE jobs (
            seq              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id               text        NOT NULL UNIQUE,
            agent            text,
            state            text        NOT NULL,
            priority         integer     NOT NULL,
            run_at           timestamptz NOT NULL,
            attempts         integer     NOT NULL DEFAULT 0,
            max_attempts     integer     NOT NULL,
            lease_token      uuid,
            lease_owner      text,
            lease_expires_at timestamptz,
            cancel_requested boolean     NOT NULL DEFAULT false,
            spec             jsonb       NOT NULL,
            result           jsonb,
            error            text,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            finished_at      timestamptz
        );

        -- Partial indexes over the live jobs only, so claiming stays cheap however many finished jobs pile up.
        CREATE INDEX jobs_runnable ON jobs (priority DESC, seq) WHERE state IN ('queued', 'retrying');
        CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('queued', 'retrying');
        CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state = 'running';
        CREATE INDEX jobs_state ON jobs (state, seq);
        CREATE INDEX jobs_agent ON jobs (agent, seq);

        -- An attempt is identified by its lease token: attempt numbers repeat after a release or a manual retry.
        CREATE TABLE job_attempts (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      text        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            number      integer     NOT NULL,
            lease_token uuid        NOT NULL UNIQUE,
            worker      text        NOT NULL,
            started_at  timestamptz NOT NULL,
            finished_at timestamptz,
            outcome     text,
            exit_code   integer,
            error       text
        );

        CREATE INDEX job_attempts_job ON job_attempts (job_id, id);

        CREATE TABLE job_events (
            seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id  text        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt integer     NOT NULL,
            at      timestamptz NOT NULL,
            kind    text        NOT NULL,
            message text        NOT NULL,
            stream  text
        );

        CREATE INDEX job_events_job ON job_events (job_id, seq);
        """,
    ];

    /// <summary>
    /// True for names that are safe to splice into SQL: the schema name goes into identifiers and into the
    /// notification channel (at most 63 bytes), neither of which can be a bound parameter.
    /// </summary>
    public static bool IsValidName(string schema) => SchemaName().IsMatch(schema);

    /// <summary>Creates the schema if needed and applies the migrations it lacks.</summary>
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, string schema, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // Workers starting together queue on this lock (released at commit), so each migration runs once and
        // CREATE SCHEMA IF NOT EXISTS never races itself into a unique violation.
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended(@name, 0))", connection, transaction))
        {
            command.Parameters.AddWithValue("name", $"agent-worker schema {schema}");
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await using (var command = new NpgsqlCommand(
            $"""
            CREATE SCHEMA IF NOT EXISTS "{schema}";
            CREATE TABLE IF NOT EXISTS "{schema}".schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL);
            """,
            connection,
            transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        int current;
        await using (var command = new NpgsqlCommand($"""SELECT coalesce(max(version), 0) FROM "{schema}".schema_version""", connection, transaction))
            current = (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        if (current > Migrations.Count)
            throw new InvalidOperationException($"PostgreSQL queue schema \"{schema}\" is at version {current}, newer than this build understands ({Migrations.Count}); upgrade agent-worker");
        for (var version = current + 1; version <= Migrations.Count; version++)
        {
            // The migrations name tables unqualified; this pins them to the queue's schema for this transaction only.
            await using var command = new NpgsqlCommand(
                $"""
                SET LOCAL search_path TO "{schema}";
                {Migrations[version - 1]}
                INSERT INTO schema_version (version, applied_at) VALUES ({version}, @at);
                """,
                connection,
                transaction);
            command.Parameters.AddWithValue("at", timeProvider.GetUtcNow());
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,47}$")]
    private static partial Regex SchemaName();
}
