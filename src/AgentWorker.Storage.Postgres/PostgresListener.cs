using System.Globalization;
using Npgsql;

namespace AgentWorker.Storage.Postgres;

/// <summary>
/// Holds one connection LISTENing on the queue's channel and turns notifications into callbacks:
/// <c>wake:ORIGIN[:COUNT]</c> (one or COUNT jobs became runnable; skipped when this process sent it, as it woke its
/// own waiters already),
/// <c>wakeall</c> (many did, or when the next one is due changed) and <c>cancel:ID</c> (someone asked to stop a running
/// job). When the connection drops it reconnects with backoff; every waiter is woken on reconnect because notifications
/// sent meanwhile are lost.
/// </summary>
internal sealed class PostgresListener : IAsyncDisposable
{
    public const string WakePrefix = "wake:";
    public const string WakeAllPayload = "wakeall";
    public const string CancelPrefix = "cancel:";

    // More wake-ups than this from one notification would only wake every waiter there is.
    private const int MaxWakesPerNotification = 10_000;

    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(10);

    private readonly NpgsqlDataSource dataSource;
    private readonly string channel;
    private readonly string ownWake;
    private readonly Action wake;
    private readonly Action wakeAll;
    private readonly Action<string> cancel;
    private readonly CancellationTokenSource stopping = new();
    private Task? loop;

    private PostgresListener(NpgsqlDataSource dataSource, string channel, string ownWake, Action wake, Action wakeAll, Action<string> cancel)
    {
        this.dataSource = dataSource;
        this.channel = channel;
        this.ownWake = ownWake;
        this.wake = wake;
        this.wakeAll = wakeAll;
        this.cancel = cancel;
    }

    /// <summary>
    /// Returns once LISTEN is in effect, so nothing notified after this returns is missed. <paramref name="ownWake"/> is
    /// the wake-up payload this process sends, ignored when it comes back.
    /// </summary>
    public static async Task<PostgresListener> StartAsync(
        NpgsqlDataSource dataSource, string channel, string ownWake, Action wake, Action wakeAll, Action<string> cancel, CancellationToken cancellationToken)
    {
        var listener = new PostgresListener(dataSource, channel, ownWake, wake, wakeAll, cancel);
        var connection = await listener.ListenAsync(cancellationToken).ConfigureAwait(false);
        listener.loop = Task.Run(() => listener.RunAsync(connection));
        return listener;
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        if (loop is not null)
            await loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        stopping.Dispose();
    }

    private async Task<NpgsqlConnection> ListenAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            connection.Notification += OnNotification;
            await using var command = new NpgsqlCommand($"""LISTEN "{channel}" """, connection);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task RunAsync(NpgsqlConnection? connection)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (connection is null)
                {
                    connection = await ListenAsync(stopping.Token).ConfigureAwait(false);
                    delay = TimeSpan.FromMilliseconds(100);
                    wakeAll();
                }
                while (true)
                    await connection.WaitAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (Exception) when (!stopping.IsCancellationRequested)
            {
                // The server went away or the network broke. Leases keep working (with their fallback poll)
                // while this retries; the delay is real time on purpose: it paces reconnects to a real server,
                // and a fake clock in tests would otherwise stall them forever.
                if (connection is not null)
                    await connection.DisposeAsync().ConfigureAwait(false);
                connection = null;
                await Task.Delay(delay, stopping.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                delay = delay * 2 < MaxReconnectDelay ? delay * 2 : MaxReconnectDelay;
            }
            catch (Exception)
            {
                // Stopping: whatever the cancelled wait threw, the loop is over.
                break;
            }
        }
        if (connection is not null)
            await connection.DisposeAsync().ConfigureAwait(false);
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (e.Payload.StartsWith(CancelPrefix, StringComparison.Ordinal))
            cancel(e.Payload[CancelPrefix.Length..]);
        else if (e.Payload == WakeAllPayload)
            wakeAll();
        else if (!e.Payload.StartsWith(ownWake, StringComparison.Ordinal))
        {
            // Anything else wakes one waiter per job it announces; a bare "wake" comes from a worker of an earlier version.
            var colon = e.Payload.LastIndexOf(':');
            var count = colon >= WakePrefix.Length
                && int.TryParse(e.Payload.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var announced)
                ? Math.Clamp(announced, 1, MaxWakesPerNotification)
                : 1;
            for (var i = 0; i < count; i++)
                wake();
        }
    }
}
