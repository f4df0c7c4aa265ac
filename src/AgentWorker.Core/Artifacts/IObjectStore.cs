namespace AgentWorker.Core.Artifacts;

/// <summary>S3-compatible object storage, where the files an agent leaves in its artifacts folder are uploaded.</summary>
public interface IObjectStore
{
    /// <summary>Shown in logs and events, e.g. <c>s3://screenshots at 127.0.0.1:9000</c>; never holds credentials.</summary>
    string Describe { get; }

    /// <summary>The bucket objects go to.</summary>
    string Bucket { get; }

    /// <summary>Stores <paramref name="content"/> under <paramref name="key"/>. Throws on failure; the caller retries.</summary>
    Task PutAsync(string key, Stream content, string contentType, CancellationToken cancellationToken);
}
