using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AgentWorker.Core.Artifacts;

namespace AgentWorker.Artifacts.S3;

/// <summary>Where and how to reach an S3-compatible server (the seed's MINIO_* settings).</summary>
public sealed record S3Options
{
    /// <summary><c>host:port</c> as MinIO clients take it (or a full http(s) URL).</summary>
    public required string Endpoint { get; init; }
    public required string AccessKey { get; init; }
    public required string SecretKey { get; init; }

    /// <summary>HTTPS when true (MINIO_SECURE).</summary>
    public bool Secure { get; init; }
    public string Bucket { get; init; } = "screenshots";
    public string Region { get; init; } = "us-east-1";
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    public Uri ServiceUrl => Endpoint.Contains("://", StringComparison.Ordinal)
        ? new Uri(Endpoint)
        : new Uri($"{(Secure ? "https" : "http")}://{Endpoint}");
}

/// <summary>
/// Artifacts in an S3-compatible bucket (MinIO, AWS S3, s3rver) through the AWS SDK, path-style. The bucket is created
/// when the first upload finds it missing. The SDK's own retries are off: <see cref="ArtifactCollector"/> retries, so every store behaves alike.
/// </summary>
public sealed class S3ArtifactStore : IObjectStore, IDisposable
{
    private readonly AmazonS3Client _client;
    private readonly S3Options _options;

    public S3ArtifactStore(S3Options options)
    {
        _options = options;
        var config = new AmazonS3Config
        {
            ServiceURL = options.ServiceUrl.AbsoluteUri,
            ForcePathStyle = true,
            AuthenticationRegion = options.Region,
            MaxErrorRetry = 0,
            Timeout = options.Timeout,
            // Servers other than AWS often lack the newer checksum trailers; send them only where the API demands them.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        _client = new AmazonS3Client(new BasicAWSCredentials(options.AccessKey, options.SecretKey), config);
    }

    public string Bucket => _options.Bucket;

    public string Describe => $"s3://{_options.Bucket} at {_options.ServiceUrl.Authority}";

    public async Task PutAsync(string key, Stream content, string contentType, CancellationToken cancellationToken)
    {
        var start = content.Position;
        try
        {
            await PutObjectAsync(key, content, contentType, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
        {
            // Created on first use, so a fresh server needs no setup; credentials without that right still work on an existing bucket.
            try
            {
                await _client.PutBucketAsync(new PutBucketRequest { BucketName = _options.Bucket }, cancellationToken).ConfigureAwait(false);
            }
            catch (AmazonS3Exception conflict) when (conflict.StatusCode == HttpStatusCode.Conflict)
            {
                // Another worker created it meanwhile.
            }
            content.Position = start;
            await PutObjectAsync(key, content, contentType, cancellationToken).ConfigureAwait(false);
        }
    }

    private Task<PutObjectResponse> PutObjectAsync(string key, Stream content, string contentType, CancellationToken cancellationToken) =>
        _client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _options.Bucket,
            Key = key,
            InputStream = content,
            AutoCloseStream = false,
            AutoResetStreamPosition = false,
            ContentType = contentType,
            // Plain-HTTP endpoints would otherwise get aws-chunked bodies, which not every S3-compatible server reads.
            UseChunkEncoding = false,
        }, cancellationToken);

    public void Dispose()
    {
        _client.Dispose();
    }
}
