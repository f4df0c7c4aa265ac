using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Queue;
using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

/// <summary>
/// The shared queue backend: any number of worker processes on any number of hosts use one Redis. Every step
/// is one Lua script, so it is atomic; a leased job stays in Redis (lease set + job hash) until it is
/// completed, failed or handed back, and any worker gives expired leases back. External producers may
/// <c>LPUSH</c> raw job JSON onto the list named like the queue, as the seed Rust worker's clients did.
/// </summary>
public sealed partial class RedisJobQueue : IJobQueue
{
    private const string DefaultQueueName = "agent_jobs";

    private readonly ConnectionMultiplexer connection;
    private readonly IDatabase database;
    private readonly RedisKeys keys;
    private readonly QueueOptions options;
    private readonly TimeProvider timeProvider;
    private readonly LeaseWaiter waiter;

    // Concurrent enqueues, leases and completions of this process go to Redis together, one script call per batch.
    private readonly Batcher<StoreRequest, (int Status, JobRecord? Job)> stores;
    private readonly Batcher<ClaimRequest, (RedisJobLease? Lease, DateTimeOffset? NextRunAt)> claims;
    private readonly Batcher<CompleteRequest, bool> completions;

    // More wake-ups than this from one signal would only wake every waiter there is.
    private const int MaxWakesPerSignal = 10_000;

    // Names this instance in the wake-ups its scripts publish, so it can skip its own: it woke its waiters already.
    private readonly string origin = Guid.NewGuid().ToString("N")[..12];
    private readonly string ownWake;

    // Only for the blocking wait on the producers' list, which would stall the shared connection. Set once by OpenAsync.
    private ConnectionMultiplexer? intakeConnection;
    private Task intake = Task.CompletedTask;

    // This instance's live leases by job id: a cancel (in-process or published by another process) reaches the worker at once.
    private readonly ConcurrentDictionary<string, RedisJobLease> leases = new(StringComparer.Ordinal);

    // Never disposed: a waiter may still be linking to it while the queue is being disposed.
    private readonly CancellationTokenSource disposing = new();
    private int disposed;

    private RedisJobQueue(ConnectionMultiplexer connection, RedisKeys keys, QueueOptions options, TimeProvider timeProvider)
    {
        this.connection = connection;
        database = connection.GetDatabase();
        this.keys = keys;
        this.options = options;
        this.timeProvider = timeProvider;
        waiter = new LeaseWaiter(options, timeProvider);
        ownWake = $"wake:{origin}";
        stores = new Batcher<StoreRequest, (int Status, JobRecord? Job)>(StoreBatchAsync);
        claims = new Batcher<ClaimRequest, (RedisJobLease? Lease, DateTimeOffset? NextRunAt)>(ClaimBatchAsync);
        completions = new Batcher<CompleteRequest, bool>(CompleteBatchAsync);
    }

    /// <summary>
    /// Connects to <paramref name="redisUrl"/> (<c>redis://[user:password@]host:port[/db]</c>, <c>rediss://…</c> for TLS,
    /// or StackExchange.Redis configuration such as <c>host:port</c>) and opens the queue <paramref name="queueName"/>
    /// (default <c>agent_jobs</c>). The connection is kept for the queue's lifetime and reconnects by itself.
    /// </summary>
    public static async Task<RedisJobQueue> OpenAsync(
        string redisUrl,
        string queueName,
        QueueOptions options,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(redisUrl);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        if (string.IsNullOrEmpty(queueName))
            queueName = DefaultQueueName;
        // Braces would change the hash tag, and with it which keys share a cluster slot.
        if (queueName.AsSpan().IndexOfAny('{', '}') >= 0)
            throw new ArgumentException($"queue name '{queueName}' must not contain '{{' or '}}'", nameof(queueName));

        var configuration = RedisConnection.Parse(redisUrl);
        var connection = await ConnectAsync(configuration, cancellationToken).ConfigureAwait(false);
        var queue = new RedisJobQueue(connection, new RedisKeys(queueName), options, timeProvider);
        try
        {
            var subscriber = connection.GetSubscriber();
            await WaitForSubscriberAsync(subscriber, queue.keys.Signal, TimeSpan.FromMilliseconds(configuration.ConnectTimeout), cancellationToken).ConfigureAwait(false);
            await subscriber.SubscribeAsync(queue.keys.Signal, (_, message) => queue.OnSignal(message))
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            // Raw pushes a crashed worker had taken but not yet stored go back to the producers' list.
            await queue.ReturnIntakeAsync(cancellationToken).ConfigureAwait(false);
            var blocking = configuration.Clone();
            blocking.AsyncTimeout = (int)IntakeCommandTimeout.TotalMilliseconds;
            blocking.ClientName = configuration.ClientName + "-intake";
            queue.intakeConnection = await ConnectAsync(blocking, cancellationToken).ConfigureAwait(false);
            queue.intake = queue.RunIntakeAsync(queue.intakeConnection.GetDatabase(), queue.disposing.Token);
        }
        catch
        {
            await queue.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return queue;
    }

    /// <summary>
    /// The multiplexer opens its pub/sub connection after the interactive one, and with <see cref="BacklogPolicy.FailFast"/>
    /// a SUBSCRIBE sent before it is up fails at once; so wait for it (up to the connect timeout; a Redis that is down
    /// still fails the open, which the caller retries).
    /// </summary>
    private static async Task WaitForSubscriberAsync(ISubscriber subscriber, RedisChannel channel, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!subscriber.IsConnected(channel) && Stopwatch.GetTimestamp() < deadline)
            await Task.Delay(TimeSpan.FromMilliseconds(5), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions configuration, CancellationToken cancellationToken)
    {
        var connecting = ConnectionMultiplexer.ConnectAsync(configuration);
        try
        {
            return await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The connection still comes up after the caller gave up on it; it must not stay open unowned.
            _ = connecting.ContinueWith(task => task.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            throw;
        }
    }

    /// <inheritdoc/>
    public string Backend => "redis";

    internal RedisKeys Keys => keys;

    /// <inheritdoc/>
    public async Task<EnqueueResult> EnqueueAsync(JobSpec job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentException.ThrowIfNullOrEmpty(job.Id, nameof(job));
        var (created, record) = await StoreAsync(job, intakeRaw: null, cancellationToken).ConfigureAwait(false);
        // The script published the wake-up for other processes; this one's waiters need no round trip.
        if (created)
            WakeWaiters();
        return new EnqueueResult(record!, created);
    }

    /// <summary>
    /// Stores a job, together with whatever other enqueues of this process are waiting (one script call for the batch).
    /// With <paramref name="intakeRaw"/>, the job comes from a raw push and is stored only if that push is still in the
    /// intake list; then a null record means someone else already took it.
    /// </summary>
    private async Task<(bool Created, JobRecord? Job)> StoreAsync(JobSpec job, RedisValue? intakeRaw, CancellationToken cancellationToken)
    {
        var (status, record) = await stores.RunAsync(new StoreRequest(job, JsonSerializer.Serialize(job, RedisRecords.Json), intakeRaw), cancellationToken).ConfigureAwait(false);
        return status < 0 ? (false, null) : (status == 1, record);
    }

    private sealed record StoreRequest(JobSpec Job, string Spec, RedisValue? IntakeRaw);

    private async Task<IReadOnlyList<(int Status, JobRecord? Job)>> StoreBatchAsync(IReadOnlyList<StoreRequest> requests)
    {
        var now = timeProvider.GetUtcNow();
        var values = new RedisValue[1 + (8 * requests.Count)];
        values[0] = Ms(now);
        var at = 1;
        foreach (var (job, spec, intakeRaw) in requests)
        {
            values[at++] = job.Id;
            values[at++] = spec;
            values[at++] = job.Agent ?? "";
            values[at++] = job.Priority;
            values[at++] = job.MaxAttempts;
            values[at++] = Ms(job.RunAt ?? now);
            values[at++] = intakeRaw is null ? "" : keys.Intake;
            values[at++] = intakeRaw ?? RedisValue.EmptyString;
        }
        var replies = (RedisResult[])(await EvaluateAsync(RedisScripts.Enqueue, values, CancellationToken.None).ConfigureAwait(false))!;
        return [.. replies.Select((reply, i) =>
        {
            var parts = (RedisResult[])reply!;
            var status = (int)parts[0];
            var request = requests[i];
            return status switch
            {
                < 0 => (status, null),
                0 => (status, RedisRecords.ReadJob(request.Job.Id, parts[1])),
                // What the script stored, read the way GetAsync reads it: the spec from the same JSON, times in whole ms.
                _ => (status, (JobRecord?)new JobRecord
                {
                    Spec = RedisRecords.ReadSpec(request.Job.Id, request.Spec),
                    State = JobState.Queued,
                    RunAt = DateTimeOffset.FromUnixTimeMilliseconds((request.Job.RunAt ?? now).ToUnixTimeMilliseconds()),
                    CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()),
                    UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()),
                }),
            };
        })];
    }

    /// <inheritdoc/>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        var result = await EvaluateAsync(RedisScripts.Get, [id], cancellationToken).ConfigureAwait(false);
        return result.IsNull ? null : RedisRecords.ReadJob(id, result);
    }

    /// <inheritdoc/>
    public async Task<JobPage> ListAsync(JobQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfNegative(query.Limit, nameof(query));
        ArgumentOutOfRangeException.ThrowIfNegative(query.Offset, nameof(query));
        var result = (RedisResult[])(await EvaluateAsync(
            RedisScripts.List,
            [query.State?.Name() ?? "", query.Agent ?? "", query.Offset, query.Limit, query.Repo ?? ""],
            cancellationToken).ConfigureAwait(false))!;
        return new JobPage([.. result.Skip(1).Select(RedisRecords.ReadJob)], (long)result[0]);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobRecord>> PeekAsync(int count, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var result = (RedisResult[])(await EvaluateAsync(RedisScripts.Peek, [Ms(timeProvider.GetUtcNow()), count], cancellationToken).ConfigureAwait(false))!;
        return [.. result.Select(RedisRecords.ReadJob)];
    }

    /// <inheritdoc/>
    public async Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        var counts = (long[])(await EvaluateAsync(RedisScripts.Stats, [], cancellationToken).ConfigureAwait(false))!;
        return new QueueStats(
            Queued: counts[0],
            Running: counts[1],
            Retrying: counts[2],
            Succeeded: counts[3],
            Failed: counts[4],
            Cancelled: counts[5],
            TimedOut: counts[6],
            Dead: counts[7]);
    }

    /// <inheritdoc/>
    public async Task<CancelOutcome> CancelAsync(string id, string reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(reason);
        var outcome = (string?)await EvaluateAsync(RedisScripts.Cancel, [Ms(timeProvider.GetUtcNow()), id, reason], cancellationToken).ConfigureAwait(false);
        switch (outcome)
        {
            case "not_found":
                return CancelOutcome.NotFound;
            case "finished":
                return CancelOutcome.AlreadyFinished;
            case "cancelled":
                return CancelOutcome.Cancelled;
            case "requested":
                // The published message would get here too, but a lease of this process need not wait for the round trip.
                RequestCancel(id);
                return CancelOutcome.CancelRequested;
            default:
                throw new InvalidDataException($"job {id}: unexpected cancel outcome '{outcome}' from the Redis queue");
        }
    }

    /// <inheritdoc/>
    public async Task<RetryOutcome> RetryAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        var outcome = (string?)await EvaluateAsync(RedisScripts.Retry, [Ms(timeProvider.GetUtcNow()), id], cancellationToken).ConfigureAwait(false);
        switch (outcome)
        {
            case "not_found":
                return RetryOutcome.NotFound;
            case "succeeded":
                return RetryOutcome.AlreadySucceeded;
            case "not_finished":
                return RetryOutcome.NotFinished;
            case "requeued":
                WakeWaiters();
                return RetryOutcome.Requeued;
            default:
                throw new InvalidDataException($"job {id}: unexpected retry outcome '{outcome}' from the Redis queue");
        }
    }

    /// <inheritdoc/>
    /// <remarks>Also puts back raw pushes that a worker took off the producers' list and never stored (it died meanwhile).</remarks>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        await ReturnIntakeAsync(cancellationToken).ConfigureAwait(false);
        // The script's "wakeall" reaches this instance's waiters too.
        var recovered = (int)await EvaluateAsync(RedisScripts.Recover, [Ms(timeProvider.GetUtcNow())], cancellationToken).ConfigureAwait(false);
        return recovered;
    }

    /// <inheritdoc/>
    public async Task AppendEventsAsync(string jobId, int attempt, IReadOnlyList<NewJobEvent> events, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
            return;
        var values = new List<RedisValue>(3 + (3 * events.Count)) { Ms(timeProvider.GetUtcNow()), jobId, attempt };
        foreach (var jobEvent in events)
        {
            values.Add(jobEvent.Kind.Name());
            values.Add(jobEvent.Message);
            values.Add(jobEvent.Stream is null ? "" : "+" + jobEvent.Stream);
        }
        var appended = (int)await EvaluateAsync(RedisScripts.Append, [.. values], cancellationToken).ConfigureAwait(false);
        if (appended == 0)
            throw new KeyNotFoundException($"job {jobId}: cannot append events, no such job");
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<JobEvent>> ReadEventsAsync(string jobId, long afterSeq, int limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        if (limit == 0)
            return [];
        // Event ids are "0-<seq>", so the stream's own range query does the afterSeq filter.
        var entries = await database.StreamRangeAsync(
            keys.Events(jobId),
            minId: $"0-{Math.Max(afterSeq, 0) + 1}",
            maxId: "+",
            count: limit).WaitAsync(cancellationToken).ConfigureAwait(false);
        return [.. entries.Select(entry => RedisRecords.ReadEvent(jobId, entry))];
    }

    /// <inheritdoc/>
    public Task PingAsync(CancellationToken cancellationToken) => database.PingAsync().WaitAsync(cancellationToken);

    /// <inheritdoc/>
    /// <remarks>No connection (commands fail fast while the multiplexer reconnects), no answer in time, or a server that is
    /// still loading its data after a restart.</remarks>
    public bool IsUnavailable(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException => true,
        RedisServerException server => server.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || server.Message.StartsWith("BUSY", StringComparison.Ordinal)
            || server.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || server.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>Wakes every waiting <see cref="LeaseAsync"/> with an <see cref="OperationCanceledException"/>, stops taking raw pushes and closes the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
            return;
        await disposing.CancelAsync().ConfigureAwait(false);
        await intake.ConfigureAwait(false);
        if (intakeConnection is not null)
        {
            await intakeConnection.CloseAsync(allowCommandsToComplete: false).ConfigureAwait(false);
            await intakeConnection.DisposeAsync().ConfigureAwait(false);
        }
        await connection.CloseAsync(allowCommandsToComplete: false).ConfigureAwait(false);
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private Task ReturnIntakeAsync(CancellationToken cancellationToken) =>
        EvaluateAsync(RedisScripts.ReturnIntake, [keys.Intake, keys.Raw], cancellationToken);

    private void OnSignal(RedisValue message)
    {
        var text = (string?)message;
        if (text is null)
            return;
        if (text.StartsWith("cancel:", StringComparison.Ordinal))
            RequestCancel(text["cancel:".Length..]);
        else if (text.StartsWith("wakeall", StringComparison.Ordinal))
            waiter.WakeAll();
        else if (!text.StartsWith(ownWake, StringComparison.Ordinal))
        {
            // "wake:<origin>[:<count>]" for as many new jobs; a bare "wake" comes from a worker of an earlier version.
            var colon = text.LastIndexOf(':');
            var count = colon >= "wake:".Length && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var announced)
                ? Math.Clamp(announced, 1, MaxWakesPerSignal)
                : 1;
            for (var i = 0; i < count; i++)
                waiter.Wake();
        }
    }

    private void RequestCancel(string id)
    {
        if (leases.TryGetValue(id, out var lease))
            lease.RequestCancel();
    }

    /// <summary>Runs a script with the queue prefix and this instance's id prepended to <paramref name="values"/>.</summary>
    private Task<RedisResult> EvaluateAsync(string script, RedisValue[] values, CancellationToken cancellationToken) =>
        database.ScriptEvaluateAsync(script, [keys.Ready], [keys.Prefix, origin, .. values]).WaitAsync(cancellationToken);

    private static string Ms(DateTimeOffset time) => time.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
}
