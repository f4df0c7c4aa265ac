namespace AgentWorker.Storage.Sqlite;

/// <summary>
/// Versioned schema. Migration <c>n</c> (1-based) brings the database from version <c>n - 1</c> to <c>n</c>;
/// applied migrations are recorded in <c>schema_version</c>. Never edit a released migration, append a new one.
/// </summary>
internal static class SqliteSchema
{
    public static readonly IReadOnlyList<string> Migrations =
    [
        """
        -- seq gives FIFO order among equal priorities; AUTOINCREMENT so it never goes backwards.
        CREATE TABLE jobs (
            seq              INTEGER PRIMARY KEY AUTOINCREMENT,
            id               TEXT    NOT NULL UNIQUE,
            agent            TEXT,
            state            TEXT    NOT NULL,
            priority         INTEGER NOT NULL,
            run_at           INTEGER NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            max_attempts     INTEGER NOT NULL,
            lease_token      TEXT,
            lease_owner      TEXT,
            lease_expires_at INTEGER,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            spec             TEXT    NOT NULL,
            result           TEXT,
            error            TEXT,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            finished_at      INTEGER
        );

        -- Partial indexes over the few live jobs; the queries name them with INDEXED BY and repeat their WHERE clauses.
        CREATE INDEX jobs_runnable ON jobs (priority DESC, seq) WHERE state IN ('queued', 'retrying');
        CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('queued', 'retrying');
        CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state = 'running';
        CREATE INDEX jobs_state ON jobs (state, seq);
        CREATE INDEX jobs_agent ON jobs (agent, seq);

        -- An attempt is identified by its lease token: attempt numbers repeat after a release or a manual retry.
        CREATE TABLE job_attempts (
            id          INTEGER PRIMARY KEY,
            job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            number      INTEGER NOT NULL,
            lease_token TEXT    NOT NULL UNIQUE,
            worker      TEXT    NOT NULL,
            started_at  INTEGER NOT NULL,
            finished_at INTEGER,
            outcome     TEXT,
            exit_code   INTEGER,
            error       TEXT
        );

        CREATE INDEX job_attempts_job ON job_attempts (job_id, id);

        -- AUTOINCREMENT: readers page with "after seq", so a seq must never be handed out twice.
        CREATE TABLE job_events (
            seq     INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            at      INTEGER NOT NULL,
            kind    TEXT    NOT NULL,
            message TEXT    NOT NULL,
            stream  TEXT
        );

        CREATE INDEX job_events_job ON job_events (job_id, seq);
        """,
    ];

    /// <summary>
    /// Brings the database up to the latest version inside <paramref name="session"/>'s immediate transaction: processes
    /// starting together migrate one after the other, and a migration that fails half-way leaves the previous version intact.
    /// </summary>
    public static int Migrate(SqliteSession session, string path, TimeProvider timeProvider)
    {
        session.Execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)", []);
        var current = session.Scalar<long>("SELECT max(version) FROM schema_version", []);
        if (current > Migrations.Count)
            throw new InvalidOperationException($"SQLite queue {path}: schema version {current} is newer than this build understands ({Migrations.Count}); upgrade agent-worker");
        for (var version = (int)current + 1; version <= Migrations.Count; version++)
        {
            session.Execute(Migrations[version - 1], []);
            session.Execute(
                "INSERT INTO schema_version (version, applied_at) VALUES ($version, $at)",
                [("$version", version), ("$at", timeProvider.GetUtcNow().ToUnixTimeMilliseconds())]);
        }
        return Migrations.Count;
    }
}
