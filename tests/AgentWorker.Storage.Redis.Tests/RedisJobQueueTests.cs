using System.Globalization;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using AgentWorker.Core.Results;
using AgentWorker.Storage.ContractTests;
using AgentWorker.Testing;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis.Tests;

/// <summary>
/// The queue contract on the Redis server at <c>REDIS_URL</c> (scripts/test.sh starts one), each test on queue
/// names of its own; plus what only Redis has: raw pushes by external producers, pub/sub between processes,
/// durability across connections.
/// </summary>
public sealed class RedisJobQueueTests : JobQueueContractTests
{
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan LongWait = TimeSpan.FromMinutes(2);

    private readonly string redisUrl = Environment.GetEnvironmentVariable("REDIS_URL") is { Length: > 0 } url
        ? url
        : throw new InvalidOperationException("REDIS_URL is not set: run the tests through scripts/test.sh, which starts a throwaway redis-server, or export REDIS_URL=redis://host:port");

    private readonly string run = Guid.NewGuid().ToString("N");
    private readonly Dictionary<IJobQueue, string> names = [];
    private readonly List<IAsyncDisposable> owned = [];
    private ConnectionMultiplexer? producer;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        producer = await ConnectionMultiplexer.ConnectAsync(RedisConnection.Parse(redisUrl));
    }

    public override async Task DisposeAsync()
    {
        foreach (var item in owned)
            await item.DisposeAsync();
        await base.DisposeAsync();
        if (producer is not null)
        {
            // The server is throwaway, but a developer's own one should not fill up with test queues.
            var server = producer.GetServers()[0];
            var doomed = new List<RedisKey>();
            await foreach (var key in server.KeysAsync(pattern: $"*{run}*"))
                doomed.Add(key);
            if (doomed.Count > 0)
                await Db.KeyDeleteAsync([.. doomed]);
            await producer.DisposeAsync();
        }
    }

    private IDatabase Db => producer!.GetDatabase();

    protected override async Task<IJobQueue> CreateQueueAsync(QueueOptions options, TimeProvider timeProvider)
    {
        var name = $"test-{run}-{names.Count}";
        var queue = await RedisJobQueue.OpenAsync(redisUrl, name, options, timeProvider, Token);
        names[queue] = name;
        return queue;
    }

    protected override async Task<IJobQueue> CreateSecondClientAsync(IJobQueue first, QueueOptions options, TimeProvider timeProvider)
    {
        var name = names[first];
        var queue = await RedisJobQueue.OpenAsync(redisUrl, name, options, timeProvider, Token);
        names[queue] = name;
        return queue;
    }

    [Fact]
    public async Task LeaseAsync_RawPushOfReliableQueueSeedShape_LeasesIt()
    {
        var queue = await OpenRedisAsync();

        await Db.ListLeftPushAsync(queue.Keys.Raw, """
            {"id":"job-123","repo_url":"https://example.test/repo.git","branch":"main","prompt":"x","mcp_connection_url":"http://mcp.example.test"}
            """);
        var lease = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);

        Assert.NotNull(lease);
        var spec = lease.Job.Spec;
        Assert.Equal(("job-123", "https://example.test/repo.git", "main", "x", "http://mcp.example.test"), (spec.Id, spec.Repo.Url, spec.Repo.Branch, spec.Prompt, spec.McpUrl));
        Assert.Null(spec.Agent);
        await lease.CompleteAsync(new JobResult(), Token);
        Assert.Equal(JobState.Succeeded, (await queue.GetAsync("job-123", Token))?.State);
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Raw));
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Intake));
    }

    [Fact]
    public async Task LeaseAsync_RawPushOfQueueEndpointSeedShape_LeasesItKeepingUnknownFields()
    {
        var queue = await OpenRedisAsync();

        await Db.ListLeftPushAsync(queue.Keys.Raw, """
            {"id":"task-7","agentId":"ssot_auditor","repoUrl":"https://example.test/other.git","mode":"dry_run","requestedAt":"2030-01-01T00:00:00Z"}
            """);
        var lease = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);

        Assert.NotNull(lease);
        Assert.Equal(("task-7", "ssot_auditor", "https://example.test/other.git"), (lease.Job.Id, lease.Job.Spec.Agent, lease.Job.Spec.Repo.Url));
        Assert.Equal("2030-01-01T00:00:00Z", lease.Job.Spec.Metadata?["requestedAt"]?.GetValue<string>());
    }

    [Fact]
    public async Task LeaseAsync_RawPushesWithoutId_GetGeneratedIdsAndRunInPushOrder()
    {
        var queue = await OpenRedisAsync();
        foreach (var prompt in new[] { "first", "second" })
            await Db.ListLeftPushAsync(queue.Keys.Raw, $$"""{"repo_url":"https://example.test/repo.git","prompt":"{{prompt}}"}""");

        var first = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);
        var second = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);

        Assert.Equal(("first", "second"), (first?.Job.Spec.Prompt, second?.Job.Spec.Prompt));
        Assert.NotEqual(first?.Job.Id, second?.Job.Id);
        Assert.True(JobRequestParser.IsValidId(first!.Job.Id));
    }

    [Fact]
    public async Task LeaseAsync_GarbageAndInvalidRawPushes_DeadLettersThemAndRunsTheNextValidJob()
    {
        var queue = await OpenRedisAsync();
        await Db.ListLeftPushAsync(queue.Keys.Raw, "this is not json {");
        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"twice","id":"over"}""");
        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"bad","repo_url":42}""");
        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"good","repo_url":"https://example.test/repo.git"}""");

        var lease = await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token);

        Assert.Equal("good", lease?.Job.Id);
        var dead = (await Db.ListRangeAsync(queue.Keys.Dead)).Select(entry => JsonNode.Parse((string)entry!)!).ToList();
        // Newest first.
        Assert.Equal(["""{"id":"bad","repo_url":42}""", """{"id":"twice","id":"over"}""", "this is not json {"], dead.Select(entry => entry["raw"]!.GetValue<string>()));
        Assert.StartsWith("invalid job: repo_url", dead[0]["reason"]?.GetValue<string>(), StringComparison.Ordinal);
        Assert.StartsWith("invalid job: body: has a property given more than once", dead[1]["reason"]?.GetValue<string>(), StringComparison.Ordinal);
        Assert.StartsWith("invalid JSON", dead[2]["reason"]?.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(dead[2]["at"]?.GetValue<string>(), out _));
        Assert.Null(await queue.GetAsync("bad", Token));
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Raw));
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Intake));
    }

    [Fact]
    public async Task LeaseAsync_RawPushWhileWaiting_WakesWaiterWithoutPolling()
    {
        // The poll interval is as long as the wait: only the blocking intake and its wake-up can end it early.
        var queue = await OpenRedisAsync(options: Options with { PollInterval = LongWait });
        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        Assert.False(leasing.IsCompleted);

        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"pushed","repo_url":"https://example.test/repo.git"}""");

        Assert.Equal("pushed", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task OpenAsync_RawPushWithNobodyLeasing_IsStoredAsQueuedJob()
    {
        var queue = await OpenRedisAsync(options: Options with { PollInterval = LongWait });

        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"pushed","repo_url":"https://example.test/repo.git"}""");

        var job = await Eventually.UntilAsync(() => queue.GetAsync("pushed", Token), job => job is not null, Prompt, "raw push stored");
        Assert.Equal(JobState.Queued, job?.State);
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Raw));
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Intake));
    }

    [Fact]
    public async Task LeaseAsync_SameRawPushTwice_StoresOneJob()
    {
        var queue = await OpenRedisAsync();
        const string raw = """{"id":"twice","repo_url":"https://example.test/repo.git"}""";
        await Db.ListLeftPushAsync(queue.Keys.Raw, raw);
        await Db.ListLeftPushAsync(queue.Keys.Raw, raw);

        Assert.Equal("twice", (await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token))?.Job.Id);

        await Eventually.UntilAsync(async () => await Db.ListLengthAsync(queue.Keys.Raw) + await Db.ListLengthAsync(queue.Keys.Intake), left => left == 0, Prompt, "both pushes taken in");
        Assert.Null(await LeaseNowAsync(queue));
        Assert.Equal(1, (await queue.ListAsync(new JobQuery(), Token)).Total);
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Dead));
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Intake));
    }

    [Fact]
    public async Task OpenAsync_RawPushLeftInIntakeByDeadWorker_PutsItBackAndRunsIt()
    {
        var name = $"test-{run}-intake";
        var keys = new RedisKeys(name);
        await Db.ListLeftPushAsync(keys.Intake, """{"id":"stranded","repo_url":"https://example.test/repo.git"}""");

        var queue = await OpenRedisAsync(name);

        Assert.Equal("stranded", (await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token))?.Job.Id);
        Assert.Equal(0, await Db.ListLengthAsync(keys.Intake));
    }

    [Fact]
    public async Task RecoverAsync_RawPushLeftInIntakeByDeadWorker_PutsItBackAndItIsStored()
    {
        var queue = await OpenRedisAsync();
        await Db.ListLeftPushAsync(queue.Keys.Intake, """{"id":"stranded","repo_url":"https://example.test/repo.git"}""");

        await queue.RecoverAsync(Token);

        var job = await Eventually.UntilAsync(() => queue.GetAsync("stranded", Token), job => job is not null, Prompt, "stranded push stored");
        Assert.Equal(JobState.Queued, job?.State);
        Assert.Equal(0, await Db.ListLengthAsync(queue.Keys.Intake));
    }

    [Fact]
    public async Task LeaseAsync_EnqueueBySecondProcess_WakesWaiterThroughPubSub()
    {
        // The poll interval is as long as the wait: only the published wake-up can end it early.
        var options = Options with { PollInterval = LongWait };
        var queue = await OpenRedisAsync(options: options);
        var other = await OpenRedisAsync(queue.Keys.QueueName, options);
        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        Assert.False(leasing.IsCompleted);

        await other.EnqueueAsync(Spec("job-1"), Token);

        Assert.Equal("job-1", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task CancelAsync_RunningJobOfSecondProcess_FiresItsLeaseTokenWithoutRenewal()
    {
        var queue = await OpenRedisAsync();
        var other = await OpenRedisAsync(queue.Keys.QueueName);
        await queue.EnqueueAsync(Spec("job-1"), Token);
        var lease = await LeaseExpectedAsync(queue);

        Assert.Equal(CancelOutcome.CancelRequested, await other.CancelAsync("job-1", "by user", Token));

        // Only the published message can fire it: this lease is never renewed.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.Delay(Timeout.Infinite, lease.CancelRequested).WaitAsync(Prompt, Token));
        Assert.True(lease.CancelRequested.IsCancellationRequested);
    }

    [Fact]
    public async Task Connections_KilledByServer_ReconnectAndWakeUpsAndRawIntakeWorkAgain()
    {
        var options = Options with { PollInterval = LongWait };
        var queue = await OpenRedisAsync(options: options);
        var other = await OpenRedisAsync(queue.Keys.QueueName, options);

        // The queues' command, pub/sub and blocking intake connections (by client name, sparing other programs on a shared server).
        var own = (long)await Db.ExecuteAsync("CLIENT", "ID");
        var clients = ((string)(await Db.ExecuteAsync("CLIENT", "LIST"))!).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ').Select(pair => pair.Split('=', 2)).Where(pair => pair.Length == 2).ToDictionary(pair => pair[0], pair => pair[1]))
            .Where(client => client.GetValueOrDefault("name", "").StartsWith("agent-worker", StringComparison.Ordinal) && client["id"] != own.ToString(CultureInfo.InvariantCulture))
            .ToList();
        Assert.True(clients.Count >= 6, $"expected 3 connections per queue, found {clients.Count}");
        foreach (var client in clients)
            await Db.ExecuteAsync("CLIENT", "KILL", "ID", client["id"]);
        await Eventually.UntilAsync(
            async () => (long)(await Db.ExecuteAsync("PUBSUB", "NUMSUB", $"{queue.Keys.Prefix}:signal"))[1],
            subscribers => subscribers == 2,
            Prompt,
            "both queues subscribed again");
        await Eventually.UntilAsync(async () => await PingsAsync(queue) && await PingsAsync(other), ok => ok, Prompt, "both queues reconnected");

        var leasing = queue.LeaseAsync("w1", LongWait, Token);
        await other.EnqueueAsync(Spec("after-kill"), Token);
        Assert.Equal("after-kill", (await leasing.WaitAsync(Prompt, Token))?.Job.Id);
        await Db.ListLeftPushAsync(queue.Keys.Raw, """{"id":"pushed-after-kill","repo_url":"https://example.test/repo.git"}""");
        Assert.Equal("pushed-after-kill", (await queue.LeaseAsync("w1", LongWait, Token).WaitAsync(Prompt, Token))?.Job.Id);
    }

    [Fact]
    public async Task OpenAsync_NewConnection_KeepsJobsHistoryEventsAndQueueOrder()
    {
        var time = NewFakeTime();
        var name = $"test-{run}-durable";
        JobRecord before;
        IReadOnlyList<JobEvent> eventsBefore;
        await using (var queue = await RedisJobQueue.OpenAsync(redisUrl, name, Options, time, Token))
        {
            await queue.EnqueueAsync(Spec("job-1", maxAttempts: 1), Token);
            await queue.EnqueueAsync(Spec("job-2"), Token);
            var lease = await LeaseExpectedAsync(queue);
            await queue.AppendEventsAsync("job-1", lease.Attempt, [new(JobEventKind.Log, "cloning", "stdout")], Token);
            await lease.FailAsync(new JobFailure(FailureKind.Error, "boom", ExitCode: 7), Token);
            before = Assert.IsType<JobRecord>(await queue.GetAsync("job-1", Token));
            eventsBefore = await queue.ReadEventsAsync("job-1", 0, 100, Token);
        }

        var reopened = await OpenRedisAsync(name, time: time);

        var after = Assert.IsType<JobRecord>(await reopened.GetAsync("job-1", Token));
        Assert.Equal(before.AttemptHistory, after.AttemptHistory);
        Assert.Equal(before with { AttemptHistory = after.AttemptHistory }, after);
        Assert.Equal(JobState.Dead, after.State);
        Assert.Equal(eventsBefore, await reopened.ReadEventsAsync("job-1", 0, 100, Token));
        Assert.Equal("job-2", (await LeaseExpectedAsync(reopened)).Job.Id);
    }

    [Fact]
    public async Task AppendEventsAsync_ManyEvents_KeepsOnlyTheNewestTenThousandOrSo()
    {
        var queue = await OpenRedisAsync();
        await queue.EnqueueAsync(Spec("chatty"), Token);
        for (var batch = 0; batch < 12; batch++)
            await queue.AppendEventsAsync("chatty", 0, [.. Enumerable.Range(0, 1000).Select(n => new NewJobEvent(JobEventKind.Log, $"line {batch}-{n}"))], Token);

        var kept = await queue.ReadEventsAsync("chatty", 0, 20_000, Token);

        // Trimming is approximate (whole stream nodes), so a little above the bound is fine; unbounded is not.
        Assert.InRange(kept.Count, 10_000, 10_200);
        Assert.Equal("line 11-999", kept[^1].Message);
        Assert.Equal(12_001, kept[^1].Seq);
    }

    [Fact]
    public async Task LeaseAsync_JobHashesDeletedByHand_SkipsThemAndLeasesTheNext()
    {
        var time = NewFakeTime();
        var queue = await OpenRedisAsync(time: time);
        await queue.EnqueueAsync(Spec("gone-ready"), Token);
        await queue.EnqueueAsync(Spec("gone-delayed", runAt: time.GetUtcNow().AddSeconds(1)), Token);
        await queue.EnqueueAsync(Spec("gone-leased"), Token);
        await queue.EnqueueAsync(Spec("kept"), Token);
        await Db.KeyDeleteAsync($"{queue.Keys.Prefix}:job:gone-ready");
        await Db.KeyDeleteAsync($"{queue.Keys.Prefix}:job:gone-delayed");
        Assert.Equal("gone-leased", (await LeaseExpectedAsync(queue)).Job.Id);
        await Db.KeyDeleteAsync($"{queue.Keys.Prefix}:job:gone-leased");
        time.Advance(Options.LeaseDuration + TimeSpan.FromSeconds(1));

        Assert.Equal("kept", (await LeaseExpectedAsync(queue)).Job.Id);
        Assert.Null(await LeaseNowAsync(queue));
    }

    [Fact]
    public async Task AppendEventsAsync_UnknownJob_ThrowsNamingIt()
    {
        var queue = await OpenRedisAsync();

        var error = await Assert.ThrowsAsync<KeyNotFoundException>(() => queue.AppendEventsAsync("missing", 0, [new(JobEventKind.Log, "x")], Token));

        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenAsync_Defaults_UsesSeedQueueNameAndReportsRedis()
    {
        await using var queue = await RedisJobQueue.OpenAsync(redisUrl, "", Options, TimeProvider.System, Token);

        Assert.Equal(("redis", "agent_jobs", "{agent_jobs}:ready"), (queue.Backend, queue.Keys.Raw, queue.Keys.Ready));
        await queue.PingAsync(Token);
    }

    [Fact]
    public async Task OpenAsync_QueueNameWithBraces_IsRefused()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => RedisJobQueue.OpenAsync(redisUrl, "a{b}", Options, TimeProvider.System, Token));
    }

    [Theory]
    [InlineData("redis://127.0.0.1:6390", "127.0.0.1:6390", null, null, null, false)]
    [InlineData("redis://localhost", "localhost:6379", null, null, null, false)]
    [InlineData("redis://:s%40cret@cache.example:7000/3", "cache.example:7000", null, "s@cret", 3, false)]
    [InlineData("rediss://worker:pw@cache.example:6380/0", "cache.example:6380", "worker", "pw", 0, true)]
    [InlineData("cache.example:6381", "cache.example:6381", null, null, null, false)]
    public void Parse_UrlForms_GiveEndpointCredentialsDatabaseAndTls(string url, string endpoint, string? user, string? password, int? database, bool tls)
    {
        var options = RedisConnection.Parse(url);

        Assert.Equal(endpoint, Assert.Single(options.EndPoints).ToString()?.Replace("Unspecified/", "", StringComparison.Ordinal));
        Assert.Equal((user, password, database, tls), (options.User, options.Password, options.DefaultDatabase, options.Ssl));
        Assert.False(options.AbortOnConnectFail);
    }

    private async Task<bool> PingsAsync(IJobQueue queue)
    {
        try
        {
            await queue.PingAsync(Token);
            return true;
        }
        catch (RedisConnectionException)
        {
            return false;
        }
    }

    private async Task<RedisJobQueue> OpenRedisAsync(string? name = null, QueueOptions? options = null, TimeProvider? time = null)
    {
        var queue = await RedisJobQueue.OpenAsync(redisUrl, name ?? $"test-{run}-{Guid.NewGuid():N}", options ?? Options, time ?? TimeProvider.System, Token);
        owned.Add(queue);
        return queue;
    }
}
