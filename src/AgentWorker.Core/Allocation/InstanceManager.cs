using System.Text;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Allocation;

/// <summary>
/// Borrows instances for job attempts and makes sure each one goes back. Every borrowed instance is written to a ledger
/// file (under the data directory) held with an OS file lock for as long as the attempt has it: the lock vanishes with a
/// crashed worker, so <see cref="SweepAsync"/> — run at start and periodically by any worker on the host — returns
/// instances whose holder died, and retries returns the allocator refused.
/// </summary>
public sealed partial class InstanceManager(IInstanceAllocator allocator, string ledgerDir, TimeProvider timeProvider, ILogger<InstanceManager> logger)
{
    private const int ReturnAttempts = 3;
    private static readonly TimeSpan ReturnRetryDelay = TimeSpan.FromMilliseconds(500);

    public string Describe => allocator.Describe;

    /// <summary>Borrows an instance for <paramref name="jobId"/>. Throws <see cref="AllocatorException"/> when none can be had.</summary>
    public async Task<InstanceLease> BorrowAsync(string jobId, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(ledgerDir);
        var path = Path.Combine(ledgerDir, $"{SafeName(jobId)}-{Guid.NewGuid():N}.json");
        // The entry exists (locked) before the allocator is asked, so a crash right after the answer still leaves a trace.
        var entry = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        BorrowedInstance instance;
        try
        {
            instance = await allocator.BorrowAsync(cancellationToken).ConfigureAwait(false);
            await entry.WriteAsync(Encoding.UTF8.GetBytes(instance.Body), CancellationToken.None).ConfigureAwait(false);
            entry.Flush(flushToDisk: true);
        }
        catch
        {
            File.Delete(path);
            await entry.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        LogBorrowed(logger, jobId, instance.Id, allocator.Describe);
        return new InstanceLease(this, instance, jobId, path, entry);
    }

    /// <summary>Returns instances whose ledger entry nobody holds (their worker died, or their return failed). Returns how many went back.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(ledgerDir))
            return 0;
        var returned = 0;
        foreach (var path in Directory.EnumerateFiles(ledgerDir, "*.json"))
        {
            FileStream entry;
            try
            {
                entry = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                // Held: a live attempt has this instance.
                continue;
            }
            await using (entry.ConfigureAwait(false))
            {
                using var reader = new StreamReader(entry, Encoding.UTF8, leaveOpen: true);
                var body = await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
                if (HttpInstanceAllocator.Parse(body) is not { } instance)
                {
                    // Empty: the worker died before the allocator answered; nothing to give back.
                    File.Delete(path);
                    continue;
                }
                if (await TryReturnAsync(instance, Path.GetFileNameWithoutExtension(path), cancellationToken).ConfigureAwait(false))
                {
                    File.Delete(path);
                    returned++;
                    LogRecovered(logger, instance.Id, allocator.Describe);
                }
            }
        }
        return returned;
    }

    internal async Task ReturnAsync(InstanceLease lease)
    {
        try
        {
            if (await TryReturnAsync(lease.Instance, lease.JobId, CancellationToken.None).ConfigureAwait(false))
                File.Delete(lease.LedgerPath);
        }
        finally
        {
            // Unlocked but still there when the return failed: the next sweep tries again.
            await lease.Entry.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<bool> TryReturnAsync(BorrowedInstance instance, string owner, CancellationToken cancellationToken)
    {
        var delay = ReturnRetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await allocator.ReturnAsync(instance, cancellationToken).ConfigureAwait(false);
                LogReturned(logger, owner, instance.Id, allocator.Describe);
                return true;
            }
            catch (AllocatorException e)
            {
                LogReturnFailed(logger, owner, instance.Id, allocator.Describe, attempt, e.Message);
                if (attempt >= ReturnAttempts)
                    return false;
            }
            await Task.Delay(delay, timeProvider, cancellationToken).ConfigureAwait(false);
            delay *= 2;
        }
    }

    private static string SafeName(string id)
    {
        var chars = id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray();
        return new string(chars, 0, Math.Min(chars.Length, 64));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId}: borrowed instance {InstanceId} from {Allocator}")]
    private static partial void LogBorrowed(ILogger logger, string jobId, string instanceId, string allocator);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Owner}: returned instance {InstanceId} to {Allocator}")]
    private static partial void LogReturned(ILogger logger, string owner, string instanceId, string allocator);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Owner}: returning instance {InstanceId} to {Allocator} failed (try {Attempt}): {Reason}")]
    private static partial void LogReturnFailed(ILogger logger, string owner, string instanceId, string allocator, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Returned instance {InstanceId} to {Allocator}: its job's worker died or its return had failed")]
    private static partial void LogRecovered(ILogger logger, string instanceId, string allocator);
}

/// <summary>An instance a job attempt holds; disposing it gives the instance back (on every outcome).</summary>
public sealed class InstanceLease : IAsyncDisposable
{
    private readonly InstanceManager _manager;
    private int _returned;

    internal InstanceLease(InstanceManager manager, BorrowedInstance instance, string jobId, string ledgerPath, FileStream entry)
    {
        _manager = manager;
        Instance = instance;
        JobId = jobId;
        LedgerPath = ledgerPath;
        Entry = entry;
    }

    public BorrowedInstance Instance { get; }
    internal string JobId { get; }
    internal string LedgerPath { get; }
    internal FileStream Entry { get; }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0)
            await _manager.ReturnAsync(this).ConfigureAwait(false);
    }
}
