using AgentWorker.Core.Results;

namespace AgentWorker.Core.Artifacts;

/// <summary>One file of a receipt, checked: <see cref="Actual"/> is the SHA-256 recomputed from the store (null when the file is not here).</summary>
public sealed record ReceiptCheck(string Name, string Expected, string? Actual)
{
    public bool Ok => Actual == Expected;

    /// <summary>
    /// Recomputes the hash of every artifact <paramref name="receipt"/> lists from <paramref name="store"/>, and checks that
    /// its diff hash is the one of the listed <c>diff.patch</c>.
    /// </summary>
    public static async Task<IReadOnlyList<ReceiptCheck>> VerifyAsync(RunReceipt receipt, ArtifactStore store, CancellationToken cancellationToken)
    {
        var checks = new List<ReceiptCheck>();
        foreach (var artifact in receipt.Artifacts)
        {
            var path = store.Locate(artifact);
            checks.Add(new ReceiptCheck(artifact.Name, artifact.Sha256, path is null ? null : await ArtifactStore.Sha256Async(path, cancellationToken).ConfigureAwait(false)));
        }
        var diff = receipt.Artifacts.FirstOrDefault(a => a.Name == ArtifactStore.DiffName);
        checks.Add(new ReceiptCheck("diffSha256", receipt.DiffSha256, diff?.Sha256));
        return checks;
    }
}
