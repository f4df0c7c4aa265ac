using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Artifacts;

/// <summary>
/// Files kept for jobs, under the worker's data directory (hidden from every sandbox):
/// <c>&lt;root&gt;/&lt;job key&gt;/&lt;attempt&gt;/&lt;name&gt;</c>. A job key is the id made safe for a path plus a hash of
/// the id, so two ids never share a directory.
/// </summary>
public sealed class ArtifactStore(string root)
{
    public const string DiffName = "diff.patch";

    /// <summary>Prefix of the names of files the agent reported; its path in the workspace follows.</summary>
    public const string WorkspacePrefix = "workspace/";

    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>Where one attempt's artifacts are written (created).</summary>
    public string AttemptDirectory(string jobId, int attempt)
    {
        var directory = Path.Combine(Root, JobKey(jobId), attempt.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(directory);
        return directory;
    }

    /// <summary>Describes a file written into the store: its key, size and SHA-256.</summary>
    public async Task<StoredArtifact> DescribeAsync(string name, string path, CancellationToken cancellationToken)
    {
        var full = Path.GetFullPath(path);
        if (!full.StartsWith(Root + "/", StringComparison.Ordinal))
            throw new ArgumentException($"{path} is not in the artifact store {Root}", nameof(path));
        var stream = File.OpenRead(full);
        await using (stream.ConfigureAwait(false))
        {
            var hash = await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
            return new StoredArtifact(name, Path.GetRelativePath(Root, full), stream.Length, Convert.ToHexStringLower(hash));
        }
    }

    /// <summary>
    /// The canonical spelling of a path an agent gave relative to its tree (<c>./a//b</c> and <c>a/b</c> are one file), or
    /// null when it is empty or would leave the tree.
    /// </summary>
    public static string? NormalizePath(string relativePath)
    {
        var segments = relativePath.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s != ".").ToList();
        return segments.Count == 0 || segments.Any(s => s == ".." || s.Any(char.IsControl)) ? null : string.Join('/', segments);
    }

    /// <summary>
    /// Copies the file at <paramref name="relativePath"/> under <paramref name="tree"/> (a tree an agent controlled) into
    /// <paramref name="attemptDirectory"/> as <c>workspace/&lt;path&gt;</c>, opened as <see cref="AgentFiles.OpenRegular"/>
    /// does: never through a symlink, never anything but a regular file. Throws <see cref="ArtifactException"/> (its message
    /// a short reason, never a host path) when the path is unsafe, missing, not a regular file, already kept, or larger than
    /// <paramref name="maxBytes"/>; a failed copy leaves no file, and a file kept before is never touched.
    /// </summary>
    public async Task<StoredArtifact> ImportAsync(string tree, string relativePath, string attemptDirectory, long maxBytes, CancellationToken cancellationToken)
    {
        var path = NormalizePath(relativePath) ?? throw new ArtifactException("not a path inside the workspace");
        var name = WorkspacePrefix + path;
        var target = Path.Combine(attemptDirectory, name);
        var input = AgentFiles.OpenRegular(tree, path);
        await using (input.ConfigureAwait(false))
        {
            if (input.Length > maxBytes)
                throw new ArtifactException($"larger than the {maxBytes} bytes left for artifacts (MAX_ARTIFACT_MB)");
            FileStream output;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                output = new FileStream(target, FileMode.CreateNew, FileAccess.Write);
            }
            catch (IOException) when (File.Exists(target))
            {
                throw new ArtifactException("already kept under this name");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ArtifactException($"cannot be stored: {AgentFiles.Reason(e)}");
            }
            try
            {
                await using (output.ConfigureAwait(false))
                    await CopyAsync(input, output, maxBytes, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Only the file this call created goes.
                File.Delete(target);
                if (e is IOException or UnauthorizedAccessException)
                    throw new ArtifactException($"cannot be stored: {AgentFiles.Reason(e)}");
                throw;
            }
        }
        return await DescribeAsync(name, target, cancellationToken).ConfigureAwait(false);
    }

    private static async Task CopyAsync(FileStream input, FileStream output, long maxBytes, CancellationToken cancellationToken)
    {
        // Copies at most the limit even if the file grew after it was measured.
        var buffer = new byte[81920];
        long copied = 0;
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if ((copied += read) > maxBytes)
                throw new ArtifactException($"larger than the {maxBytes} bytes left for artifacts (MAX_ARTIFACT_MB)");
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The file of <paramref name="artifact"/> on this host, or null when it is not here (kept by another worker host, or removed).</summary>
    public string? Locate(StoredArtifact artifact)
    {
        var full = Path.GetFullPath(Path.Combine(Root, artifact.Path));
        return full.StartsWith(Root + "/", StringComparison.Ordinal) && File.Exists(full) ? full : null;
    }

    /// <summary>SHA-256 (lower-case hex) of a file, as recorded in <see cref="StoredArtifact.Sha256"/>.</summary>
    public static async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        var stream = File.OpenRead(path);
        await using (stream.ConfigureAwait(false))
            return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
    }

    private static string JobKey(string jobId)
    {
        var safe = new string([.. jobId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').Take(64)]);
        return $"{safe}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(jobId)))[..12]}";
    }
}

/// <summary>A file the agent reported cannot be kept; the message says why.</summary>
public sealed class ArtifactException(string message) : Exception(message);
