namespace AgentWorker.Core.Artifacts;

/// <summary>What is uploaded from a job's artifacts folder, and under which keys.</summary>
public sealed record ArtifactOptions
{
    /// <summary>The seed's AGENT_ID: keys are <c>agent&lt;AGENT_ID&gt;/screenshots/&lt;uuid&gt;.&lt;ext&gt;</c> when set, else <c>jobs/&lt;job id&gt;/&lt;uuid&gt;.&lt;ext&gt;</c>.</summary>
    public string? AgentId { get; init; }

    public int MaxFiles { get; init; } = 100;
    public long MaxFileBytes { get; init; } = 100L * 1024 * 1024;

    /// <summary>Bytes read (hashed, uploaded) from one attempt's artifacts folder in all (MAX_ARTIFACT_MB).</summary>
    public long MaxTotalBytes { get; init; } = 100L * 1024 * 1024;

    /// <summary>Entries of the artifacts folder looked at; an agent may leave millions.</summary>
    public int MaxEntries { get; init; } = 10_000;

    /// <summary>Tries per file before the failure is recorded on the artifact.</summary>
    public int UploadAttempts { get; init; } = 3;

    /// <summary>Wait before the second try; doubles per try.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The object key for a file named <paramref name="fileName"/>: a fresh UUID keeps the file's (sanitized) extension.</summary>
    public string KeyFor(string jobId, string fileName)
    {
        var extension = Path.GetExtension(fileName).TrimStart('.').ToLowerInvariant();
        var safe = new string([.. extension.Where(char.IsAsciiLetterOrDigit)]);
        var name = safe.Length is > 0 and <= 16 ? $"{Guid.NewGuid()}.{safe}" : Guid.NewGuid().ToString();
        return AgentId is { Length: > 0 } agent ? $"agent{agent}/screenshots/{name}" : $"jobs/{jobId}/{name}";
    }
}
