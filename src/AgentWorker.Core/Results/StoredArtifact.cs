namespace AgentWorker.Core.Results;

/// <summary>
/// A file kept for a job: <c>diff.patch</c> (every run) or one the agent reported (<c>workspace/&lt;path&gt;</c>).
/// <see cref="Path"/> is its key in the worker's artifact store (relative to <c>&lt;data-dir&gt;/artifacts</c>).
/// </summary>
public sealed record StoredArtifact(string Name, string Path, long Size, string Sha256);
