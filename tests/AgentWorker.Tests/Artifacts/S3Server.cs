using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using AgentWorker.Artifacts.S3;

namespace AgentWorker.Tests.Artifacts;

/// <summary>The S3-compatible server scripts/services/s3.sh started (MINIO_* variables), and a plain SDK client to check what landed there.</summary>
internal static class S3Server
{
    private static string Variable(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{name} is not set: run the tests with scripts/test.sh, which starts a throwaway S3-compatible server (s3rver) and exports MINIO_*");

    public static string Endpoint => Variable("MINIO_ENDPOINT");
    public static string AccessKey => Variable("MINIO_ACCESS_KEY");
    public static string SecretKey => Variable("MINIO_SECRET_KEY");

    /// <summary>The worker settings that point at this server, with a bucket of the test's own.</summary>
    public static Dictionary<string, string> Settings(string bucket) => new()
    {
        ["MINIO_ENDPOINT"] = Endpoint,
        ["MINIO_ACCESS_KEY"] = AccessKey,
        ["MINIO_SECRET_KEY"] = SecretKey,
        ["MINIO_SECURE"] = "false",
        ["MINIO_BUCKET"] = bucket,
    };

    public static string NewBucket() => $"t-{Guid.NewGuid():N}"[..30];

    public static S3Options Options(string bucket) => new() { Endpoint = Endpoint, AccessKey = AccessKey, SecretKey = SecretKey, Bucket = bucket };

    public static AmazonS3Client Client() => new(new BasicAWSCredentials(AccessKey, SecretKey), new AmazonS3Config
    {
        ServiceURL = $"http://{Endpoint}",
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    public static async Task<byte[]> ReadAsync(string bucket, string key)
    {
        using var client = Client();
        using var response = await client.GetObjectAsync(bucket, key);
        using var buffer = new MemoryStream();
        await response.ResponseStream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    public static async Task<IReadOnlyList<string>> KeysAsync(string bucket)
    {
        using var client = Client();
        try
        {
            var listing = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket });
            return [.. (listing.S3Objects ?? []).Select(o => o.Key)];
        }
        catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
        {
            return [];
        }
    }
}
