using System.Security.Cryptography;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Workspace;
using Microsoft.Extensions.Logging;

namespace AgentWorker.Core.Artifacts;

/// <summary>
/// After a run, lists the regular files the agent left in its artifacts folder (never through a symlink: the agent could
/// point one at any host file), hashes them and, when a store is configured, uploads each one with retries. A file that
/// cannot be stored is recorded with the reason; it never fails the job.
/// </summary>
public sealed partial class ArtifactCollector(IObjectStore? store, ArtifactOptions options, TimeProvider timeProvider, ILogger<ArtifactCollector> logger)
{
    public bool Uploads => store is not null;

    /// <summary>The files under <paramref name="directory"/>, stored where possible; <paramref name="report"/> gets one event per file.</summary>
    public async Task<IReadOnlyList<ArtifactRecord>> CollectAsync(string directory, string jobId, Func<NewJobEvent, ValueTask> report, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(directory))
            return [];
        var files = SafeTree.Entries(directory).OfType<FileInfo>().Where(f => f.LinkTarget is null)
            .Select(f => (File: f, Name: Path.GetRelativePath(directory, f.FullName)))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
        var records = new List<ArtifactRecord>();
        foreach (var (file, name) in files)
        {
            if (records.Count == options.MaxFiles)
            {
                await report(new NewJobEvent(JobEventKind.Artifact, $"{files.Count - records.Count} more artifact(s) not kept: at most {options.MaxFiles} per job")).ConfigureAwait(false);
                break;
            }
            var record = await CollectOneAsync(file, name, jobId, cancellationToken).ConfigureAwait(false);
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

    private async Task<ArtifactRecord> CollectOneAsync(FileInfo file, string name, string jobId, CancellationToken cancellationToken)
    {
        var contentType = ContentTypes.For(name);
        FileStream stream;
        try
        {
            stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new ArtifactRecord(name, file.Length, "", contentType) { Error = $"unreadable: {e.Message}" };
        }
        await using (stream.ConfigureAwait(false))
        {
            var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
            var record = new ArtifactRecord(name, stream.Length, sha256, contentType);
            if (store is null)
                return record;
            if (stream.Length > options.MaxFileBytes)
                return record with { Error = $"larger than {options.MaxFileBytes} bytes" };
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
                    LogUploadFailed(logger, jobId, name, store.Describe, attempt, options.UploadAttempts, e.Message);
                    if (attempt >= options.UploadAttempts)
                        return record with { Error = $"upload to {store.Describe} failed after {attempt} tries: {e.Message}" };
                }
                await Task.Delay(delay, timeProvider, cancellationToken).ConfigureAwait(false);
                delay *= 2;
            }
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
