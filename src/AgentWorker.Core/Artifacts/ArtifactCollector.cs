using System.Security.Cryptography;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Artifacts;

/// <summary>
/// After a run, lists the files the agent left in its artifacts folder, hashes them and, when a store is configured, uploads
/// each one with retries. Only regular files are read, each opened as <see cref="AgentFiles.OpenRegular"/> does (never
/// through a symlink, never a FIFO, socket or device: the agent could point a link at any host file, and a FIFO would block
/// the reader); anything else is skipped and said in the job log. The walk, the number of files and the bytes read are
/// bounded, and the attempt's token stops it. A file that cannot be stored is recorded with the reason; it never fails the job.
/// </summary>
public sealed partial class ArtifactCollector(IObjectStore? store, ArtifactOptions options, TimeProvider timeProvider, ILogger<ArtifactCollector> logger)
{
    public bool Uploads => store is not null;

    /// <summary>The files under <paramref name="directory"/>, stored where possible; <paramref name="report"/> gets one event per file.</summary>
    public async Task<IReadOnlyList<ArtifactRecord>> CollectAsync(string directory, string jobId, Func<NewJobEvent, ValueTask> report, CancellationToken cancellationToken)
    {
        var folder = new DirectoryInfo(directory);
        if (!folder.Exists)
            return [];
        if (folder.LinkTarget is not null)
        {
            await report(new NewJobEvent(JobEventKind.Artifact, "artifacts folder: skipped: a symbolic link")).ConfigureAwait(false);
            return [];
        }
        // The agent may have left millions of entries: only so many are looked at.
        var entries = SafeTree.Entries(directory).Take(options.MaxEntries + 1).ToList();
        cancellationToken.ThrowIfCancellationRequested();
        if (entries.Count > options.MaxEntries)
        {
            await report(new NewJobEvent(JobEventKind.Artifact, $"artifacts folder: more than {options.MaxEntries} entries, the rest not looked at")).ConfigureAwait(false);
            entries.RemoveAt(options.MaxEntries);
        }
        var files = entries.Where(e => e is FileInfo || e.LinkTarget is not null)
            .Select(e => Path.GetRelativePath(directory, e.FullName))
            .Order(StringComparer.Ordinal)
            .ToList();
        var records = new List<ArtifactRecord>();
        var budget = options.MaxTotalBytes;
        for (var i = 0; i < files.Count; i++)
        {
            var name = files[i];
            if (records.Count == options.MaxFiles)
            {
                await report(new NewJobEvent(JobEventKind.Artifact, $"{files.Count - i} more artifact(s) not kept: at most {options.MaxFiles} per job")).ConfigureAwait(false);
                break;
            }
            FileStream stream;
            try
            {
                stream = AgentFiles.OpenRegular(directory, name);
            }
            catch (ArtifactException e)
            {
                await report(new NewJobEvent(JobEventKind.Artifact, $"{name}: skipped: {e.Message}")).ConfigureAwait(false);
                continue;
            }
            ArtifactRecord record;
            await using (stream.ConfigureAwait(false))
                record = await CollectOneAsync(stream, name, jobId, budget, cancellationToken).ConfigureAwait(false);
            budget -= record.Error is null ? record.Size : 0;
            records.Add(record);
            await report(new NewJobEvent(JobEventKind.Artifact, record switch
            {
                { Error: { } error } => $"{name}: not stored: {error}",
                { Key: { } key } => $"{name}: stored as s3://{record.Bucket}/{key} ({record.Size} bytes)",
                _ => $"{name}: {record.Size} bytes (no artifact store configured)",
            })).ConfigureAwait(false);
        }
        return records;
    }

    private async Task<ArtifactRecord> CollectOneAsync(FileStream stream, string name, string jobId, long budget, CancellationToken cancellationToken)
    {
        var contentType = ContentTypes.For(name);
        var length = stream.Length;
        // Measured before a byte is read: what is over a limit is neither hashed nor stored.
        if (length > options.MaxFileBytes)
            return new ArtifactRecord(name, length, "", contentType) { Error = $"larger than {options.MaxFileBytes} bytes" };
        if (length > budget)
            return new ArtifactRecord(name, length, "", contentType) { Error = $"over the {options.MaxTotalBytes} bytes all artifacts of an attempt may take (MAX_ARTIFACT_MB)" };
        string sha256;
        try
        {
            sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new ArtifactRecord(name, length, "", contentType) { Error = $"unreadable: {AgentFiles.Reason(e)}" };
        }
        var record = new ArtifactRecord(name, length, sha256, contentType);
        if (store is null)
            return record;
        var key = options.KeyFor(jobId, name);
        var delay = options.RetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                stream.Position = 0;
                await store.PutAsync(key, stream, contentType, cancellationToken).ConfigureAwait(false);
                return record with { Bucket = store.Bucket, Key = key };
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                var reason = e is IOException or UnauthorizedAccessException ? AgentFiles.Reason(e) : e.Message;
                LogUploadFailed(logger, jobId, name, store.Describe, attempt, options.UploadAttempts, reason);
                if (attempt >= options.UploadAttempts)
                    return record with { Error = $"upload to {store.Describe} failed after {attempt} tries: {reason}" };
            }
            await Task.Delay(delay, timeProvider, cancellationToken).ConfigureAwait(false);
            delay *= 2;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: uploading artifact {Name} to {Store} failed (try {Attempt} of {Attempts}): {Reason}")]
    private static partial void LogUploadFailed(ILogger logger, string jobId, string name, string store, int attempt, int attempts, string reason);
}

/// <summary>Content types by file extension, for the artifacts agents usually leave.</summary>
internal static class ContentTypes
{
    public static string For(string name) => Path.GetExtension(name).ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".jpg" or ".jpeg" => "image/jpeg",
        ".gif" => "image/gif",
        ".webp" => "image/webp",
        ".svg" => "image/svg+xml",
        ".json" => "application/json",
        ".html" or ".htm" => "text/html",
        ".pdf" => "application/pdf",
        ".txt" or ".log" or ".md" => "text/plain",
        ".diff" or ".patch" => "text/x-diff",
        ".zip" => "application/zip",
        ".gz" or ".tgz" => "application/gzip",
        _ => "application/octet-stream",
    };
}
