namespace AgentWorker.Core.Artifacts;

/// <summary>
/// One file the agent left in its artifacts folder: its path relative to that folder, size and SHA-256, and where it was
/// stored (<see cref="Bucket"/>/<see cref="Key"/>) or why it was not (<see cref="Error"/>).
/// </summary>
public sealed record ArtifactRecord(string Name, long Size, string Sha256, string ContentType)
{
    public string? Bucket { get; init; }
    public string? Key { get; init; }

    /// <summary>Set when the file was not stored (upload failed after retries, or it was over a limit).</summary>
    public string? Error { get; init; }
}
