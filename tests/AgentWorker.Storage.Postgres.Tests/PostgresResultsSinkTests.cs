using AgentWorker.Core.Jobs;
using AgentWorker.Core.Results;
using AgentWorker.Core.Sinks;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Storage.Postgres.Tests;

/// <summary>The results table on the real server, each test in its own schema.</summary>
public sealed class PostgresResultsSinkTests : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchemaName();
    private PostgresResultsSink? _sink;

    private PostgresResultsSink Sink => _sink ??= PostgresResultsSink.Create(PostgresServer.Url, $"{_schema}.audit_results", NullLogger.Instance);

    public Task InitializeAsync() => PostgresServer.ScalarAsync<object>($"CREATE SCHEMA {_schema}");

    private static JobNotice Notice(JobState state, DateTimeOffset? finished = null) => JobNotice.For(new JobRecord
    {
        Spec = new JobSpec { Id = "job-1", Agent = "ssot_auditor", Repo = new RepoRef("https://git.example/app.git", "main"), Metadata = new() { ["ticket"] = "T-1" } },
        State = state,
        Attempts = 2,
        CreatedAt = DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
        UpdatedAt = DateTimeOffset.Parse("2026-01-01T00:00:09Z", System.Globalization.CultureInfo.InvariantCulture),
        RunAt = DateTimeOffset.UnixEpoch,
        FinishedAt = finished ?? DateTimeOffset.Parse("2026-01-01T00:00:09Z", System.Globalization.CultureInfo.InvariantCulture),
        AttemptHistory = [new AttemptRecord(2, "w", DateTimeOffset.Parse("2026-01-01T00:00:04Z", System.Globalization.CultureInfo.InvariantCulture), null, null, 0, null)],
        Result = new JobResult
        {
            Findings = [new Finding("high", "r1", "a.py", 1, "m"), new Finding("low", "r2", null, null, "m"), new Finding("medium", "r3", null, null, "m")],
            HealthScore = 85,
            ExitCode = 0,
            Changes = new ChangeReport("abc123", null, null, new DiffStat(0, 0, 0, [], false)),
        },
    }, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task DeliverAsync_NoTable_CreatesItAndWritesTheOutcomeOnce()
    {
        var notice = Notice(JobState.Succeeded);

        await Sink.DeliverAsync(notice, CancellationToken.None);
        // A retried delivery (its answer was lost) adds no second row.
        await Sink.DeliverAsync(notice, CancellationToken.None);

        Assert.Equal(1L, await PostgresServer.ScalarAsync<long>($"SELECT count(*) FROM {_schema}.audit_results"));
        Assert.Equal(
            "job-1|ssot_auditor|https://git.example/app.git|main|dry_run|succeeded|success|85|3|1|2|0|r1|abc123|2|5000|T-1",
            await PostgresServer.ScalarAsync<string>($"""
                SELECT concat_ws('|', task_id, agent_id, repo_url, branch, mode, state, status, health_score, findings_total,
                    findings_errors, findings_warnings, findings_info, findings->0->>'rule', commit_before, attempts, duration_ms, metadata->>'ticket')
                FROM {_schema}.audit_results
                """));
    }

    [Fact]
    public async Task DeliverAsync_LaterOutcomeOfTheSameJob_AddsARow()
    {
        await Sink.DeliverAsync(Notice(JobState.Failed), CancellationToken.None);
        await Sink.DeliverAsync(Notice(JobState.Succeeded, DateTimeOffset.Parse("2026-01-02T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture)), CancellationToken.None);

        Assert.Equal("error,success", await PostgresServer.ScalarAsync<string>($"SELECT string_agg(status, ',' ORDER BY completed_at) FROM {_schema}.audit_results"));
    }

    [Fact]
    public async Task DeliverAsync_SeedShapedTable_FillsTheColumnsItHas()
    {
        await PostgresServer.ScalarAsync<object>($"""
            CREATE TABLE {_schema}.audit_results (
                id uuid PRIMARY KEY DEFAULT gen_random_uuid(), task_id text, agent_id text, repo_url text, status text,
                health_score integer, findings_errors integer, findings_warnings integer, findings_info integer,
                duration_ms integer, completed_at timestamptz, error_message text, created_at timestamptz DEFAULT now())
            """);

        await Sink.DeliverAsync(Notice(JobState.TimedOut), CancellationToken.None);

        Assert.Equal("job-1|timeout|85|1|2|5000", await PostgresServer.ScalarAsync<string>(
            $"SELECT concat_ws('|', task_id, status, health_score, findings_errors, findings_warnings, duration_ms) FROM {_schema}.audit_results"));
    }

    [Fact]
    public async Task DeliverAsync_TableWithoutTaskId_FailsForGood()
    {
        await PostgresServer.ScalarAsync<object>($"CREATE TABLE {_schema}.audit_results (id serial PRIMARY KEY, status text)");

        var error = await Assert.ThrowsAsync<SinkException>(() => Sink.DeliverAsync(Notice(JobState.Succeeded), CancellationToken.None));

        Assert.False(error.Transient);
        Assert.Contains("task_id", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(JobState.Queued, false)]
    [InlineData(JobState.Running, false)]
    [InlineData(JobState.Retrying, false)]
    [InlineData(JobState.Succeeded, true)]
    [InlineData(JobState.Dead, true)]
    [InlineData(JobState.Cancelled, true)]
    public void Accepts_OnlyFinalStates(JobState state, bool accepted) => Assert.Equal(accepted, Sink.Accepts(Notice(state)));

    public async Task DisposeAsync()
    {
        _sink?.Dispose();
        await PostgresServer.DropSchemaAsync(_schema);
    }
}
