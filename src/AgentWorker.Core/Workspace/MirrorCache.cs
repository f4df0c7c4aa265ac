using System.Security.Cryptography;
using System.Text;
using AgentWorker.Core.Jobs;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Workspace;

/// <summary>
/// Bare mirrors of the repositories jobs clone, one per URL, so a repeat clone copies objects from local disk instead of
/// the network. Before each clone the mirror is fetched (and pruned), so the workspace has exactly what the remote has.
/// <para>
/// Locking, per mirror (any number of worker processes may share the directory): a job holds <c>KEY.lock</c> shared
/// while it fetches into or clones from the mirror; removal and compaction take it exclusive, so they never run under a
/// reader. Fetches into one mirror are serialised by a lock on the mirror directory itself. Reading while another job
/// fetches is safe because git only adds packs and swaps refs atomically, and no command started here runs gc.
/// </para>
/// </summary>
internal sealed partial class MirrorCache(CloneCacheOptions options, GitClient git, ILogger logger)
{
    private const int MaxPacks = 16;
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(5);
    private DateTime _nextSweep = DateTime.MinValue;

    /// <summary>
    /// Mirror name of <paramref name="url"/>: a hash of the URL without credentials, so none appears on disk. URLs that differ
    /// only in the user share a mirror; that is safe because a job reads the mirror only after its own fetch succeeded.
    /// A cryptographic hash, so no URL can be made to collide with another repository's mirror.
    /// </summary>
    public static string Key(string url) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(RepoUrls.WithoutCredentials(RepoUrls.ToGitUrl(url)))))[..32];

    /// <summary>Fetches the mirror of <paramref name="repo"/> (creating it on first use), then clones the workspace from it.</summary>
    public async Task CloneAsync(RepoRef repo, string destination, string home, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.Dir);
        var url = RepoUrls.ToGitUrl(repo.Url);
        var key = Key(repo.Url);
        var lockPath = Path.Combine(options.Dir, key + ".lock");
        var mirror = Path.Combine(options.Dir, key + ".git");
        await TryCompactAsync(mirror, lockPath, home, cancellationToken).ConfigureAwait(false);

        using var use = await FileLock.AcquireAsync(lockPath, exclusive: false, create: true, cancellationToken).ConfigureAwait(false);
        // Last use, for the sweeper.
        File.SetLastWriteTimeUtc(lockPath, DateTime.UtcNow);
        Directory.CreateDirectory(mirror);
        var branch = repo.Branch;
        using (await FileLock.AcquireAsync(mirror, exclusive: true, create: false, cancellationToken).ConfigureAwait(false))
        {
            // Without a branch or commit the job wants the remote's default branch; the mirror cannot tell which that is.
            var head = repo.Branch is null && repo.Commit is null
                ? git.DefaultBranchAsync(url, home, cancellationToken)
                : Task.FromResult<string?>(null);
            await Task.WhenAll(git.FetchMirrorAsync(url, mirror, home, cancellationToken), head).ConfigureAwait(false);
            branch ??= await head.ConfigureAwait(false);
        }
        if (branch is null && repo.Commit is null)
            throw new WorkspaceException("the remote's HEAD names no branch", permanent: false);
        await git.CloneFromMirrorAsync(repo with { Branch = branch }, mirror, destination, home, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every fetch that brings objects adds a pack; many packs slow every clone, so merge them when nobody is reading.</summary>
    private async Task TryCompactAsync(string mirror, string lockPath, string home, CancellationToken cancellationToken)
    {
        var packs = Path.Combine(mirror, "objects", "pack");
        if (!Directory.Exists(packs) || Directory.EnumerateFiles(packs, "*.pack").Take(MaxPacks + 1).Count() <= MaxPacks)
            return;
        using var exclusive = FileLock.TryAcquire(lockPath, exclusive: true, create: false);
        if (exclusive is null)
            return;
        try
        {
            await git.CompactMirrorAsync(mirror, home, cancellationToken).ConfigureAwait(false);
        }
        catch (WorkspaceException e)
        {
            // git writes the merged pack before it deletes the old ones, so a failure leaves a usable mirror.
            LogCompactFailed(logger, mirror, e.Message);
        }
    }

    /// <summary>
    /// Removes mirrors unused for longer than the maximum age, then the least recently used ones while the cache is over its
    /// size, skipping any in use. Runs at most every few minutes (the first call always runs). Returns how many were removed.
    /// </summary>
    public int SweepIfDue(DateTime utcNow)
    {
        if (utcNow < _nextSweep)
            return 0;
        _nextSweep = utcNow + SweepInterval;
        return Sweep(utcNow);
    }

    public int Sweep(DateTime utcNow)
    {
        if (!Directory.Exists(options.Dir))
            return 0;
        foreach (var leftover in Directory.EnumerateDirectories(options.Dir, "*.removing-*"))
            SafeTree.Delete(leftover);

        var entries = Directory.EnumerateFiles(options.Dir, "*.lock")
            .Select(lockPath => (Lock: lockPath, Mirror: Path.ChangeExtension(lockPath, ".git"), LastUse: File.GetLastWriteTimeUtc(lockPath)))
            .OrderBy(entry => entry.LastUse)
            .Select(entry => (entry.Lock, entry.Mirror, entry.LastUse, Bytes: SizeOf(entry.Mirror)))
            .ToList();
        var total = entries.Sum(entry => entry.Bytes);
        var removed = 0;
        foreach (var (lockPath, mirror, lastUse, bytes) in entries)
        {
            var stale = utcNow - lastUse > options.MaxAge;
            if (!stale && total <= options.MaxBytes)
                break;
            try
            {
                using var exclusive = FileLock.TryAcquire(lockPath, exclusive: true, create: false);
                if (exclusive is null)
                    continue;
                if (Directory.Exists(mirror))
                {
                    // Renamed first, so a removal cut short never leaves a half-deleted mirror that a clone would read.
                    var doomed = $"{mirror}.removing-{Path.GetRandomFileName()}";
                    Directory.Move(mirror, doomed);
                    SafeTree.Delete(doomed);
                }
                File.Delete(lockPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogSweepFailed(logger, mirror, e.Message);
                continue;
            }
            total -= bytes;
            removed++;
            LogRemoved(logger, mirror, stale ? "unused" : "cache over its size", bytes / (1024 * 1024));
        }
        return removed;
    }

    private static long SizeOf(string dir) =>
        Directory.Exists(dir) ? SafeTree.Entries(dir).OfType<FileInfo>().Sum(LengthOrZero) : 0;

    // A fetch may remove its temporary files while they are counted.
    private static long LengthOrZero(FileInfo file)
    {
        try
        {
            return file.Length;
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed clone cache mirror {Path} ({Reason}, {Megabytes} MiB)")]
    private static partial void LogRemoved(ILogger logger, string path, string reason, long megabytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not remove clone cache mirror {Path}: {Reason}")]
    private static partial void LogSweepFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not compact clone cache mirror {Path}: {Reason}")]
    private static partial void LogCompactFailed(ILogger logger, string path, string reason);
}
