using System.Security.Cryptography;
using System.Text;
using AgentWorker.Artifacts.S3;
using AgentWorker.Core.Artifacts;
using AgentWorker.Core.Jobs;
using AgentWorker.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Tests.Artifacts;

/// <summary>The artifact stage against the real S3-compatible server the test script starts (s3rver).</summary>
public sealed class ArtifactCollectorTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-artifacts");
    private readonly List<NewJobEvent> _events = [];

    private ValueTask Report(NewJobEvent e)
    {
        _events.Add(e);
        return ValueTask.CompletedTask;
    }

    private static ArtifactCollector Collector(IObjectStore? store, string? agentId = "7") =>
        new(store, new ArtifactOptions { AgentId = agentId, RetryDelay = TimeSpan.FromMilliseconds(10) }, TimeProvider.System, NullLogger<ArtifactCollector>.Instance);

    [Fact]
    public async Task CollectAsync_UploadsEveryFile_UnderTheSeedKeyLayout_WithSameBytesAndHash()
    {
        var bucket = S3Server.NewBucket();
        using var store = new S3ArtifactStore(S3Server.Options(bucket));
        var png = new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3 };
        File.WriteAllBytes(_dir.Combine("shot.PNG"), png);
        Directory.CreateDirectory(_dir.Combine("sub"));
        File.WriteAllText(_dir.Combine("sub", "notes.txt"), "hello");

        var records = await Collector(store).CollectAsync(_dir.Path, "job-1", Report, CancellationToken.None);

        Assert.Equal(["shot.PNG", "sub/notes.txt"], records.Select(r => r.Name));
        var shot = records[0];
        Assert.Null(shot.Error);
        Assert.Equal(bucket, shot.Bucket);
        Assert.Matches("^agent7/screenshots/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.png$", shot.Key);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(png)), shot.Sha256);
        Assert.Equal("image/png", shot.ContentType);
        Assert.Equal(png, await S3Server.ReadAsync(bucket, shot.Key!));
        Assert.Equal("hello", Encoding.UTF8.GetString(await S3Server.ReadAsync(bucket, records[1].Key!)));
        Assert.EndsWith(".txt", records[1].Key);
        Assert.Equal(2, _events.Count(e => e.Kind == JobEventKind.Artifact && e.Message.Contains($"s3://{bucket}/", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task CollectAsync_WithoutAgentId_KeysByJob()
    {
        var bucket = S3Server.NewBucket();
        using var store = new S3ArtifactStore(S3Server.Options(bucket));
        File.WriteAllText(_dir.Combine("report.json"), "{}");

        var records = await Collector(store, agentId: null).CollectAsync(_dir.Path, "job-42", Report, CancellationToken.None);

        Assert.StartsWith("jobs/job-42/", records.Single().Key);
        Assert.Equal([records.Single().Key!], await S3Server.KeysAsync(bucket));
    }

    [Fact]
    public async Task CollectAsync_NeverFollowsSymlinks_OutOfTheFolder()
    {
        var bucket = S3Server.NewBucket();
        using var store = new S3ArtifactStore(S3Server.Options(bucket));
        var outside = _dir.Combine("outside-secret.txt");
        Directory.CreateDirectory(_dir.Combine("artifacts"));
        File.WriteAllText(outside, "host secret");
        File.CreateSymbolicLink(_dir.Combine("artifacts", "leak.txt"), outside);
        Directory.CreateSymbolicLink(_dir.Combine("artifacts", "etc"), "/etc");
        File.WriteAllText(_dir.Combine("artifacts", "real.txt"), "mine");

        var records = await Collector(store).CollectAsync(_dir.Combine("artifacts"), "job-1", Report, CancellationToken.None);

        Assert.Equal(["real.txt"], records.Select(r => r.Name));
        Assert.Single(await S3Server.KeysAsync(bucket));
    }

    [Fact]
    public async Task CollectAsync_StoreUnreachable_RetriesThenRecordsTheError_WithoutThrowing()
    {
        // A loopback port nobody listens on: every try is refused at once.
        var port = EndToEnd.WorkerProcess.FreePort();
        using var store = new S3ArtifactStore(new S3Options { Endpoint = $"127.0.0.1:{port}", AccessKey = "a", SecretKey = "b", Timeout = TimeSpan.FromSeconds(5) });
        File.WriteAllText(_dir.Combine("shot.png"), "x");
        var counting = new CountingStore(store);

        var records = await Collector(counting).CollectAsync(_dir.Path, "job-1", Report, CancellationToken.None);

        var record = Assert.Single(records);
        Assert.Null(record.Key);
        Assert.Contains("failed after 3 tries", record.Error);
        Assert.Equal(3, counting.Calls);
        Assert.Contains(_events, e => e.Message.StartsWith("shot.png: not stored", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CollectAsync_WithoutStore_ListsFilesWithHashes()
    {
        File.WriteAllText(_dir.Combine("a.log"), "abc");

        var record = Assert.Single(await Collector(null).CollectAsync(_dir.Path, "job-1", Report, CancellationToken.None));

        Assert.Equal(("a.log", 3L, "text/plain"), (record.Name, record.Size, record.ContentType));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("abc"u8)), record.Sha256);
        Assert.Null(record.Key);
        Assert.Null(record.Error);
    }

    public void Dispose() => _dir.Dispose();

    private sealed class CountingStore(IObjectStore inner) : IObjectStore
    {
        public int Calls;
        public string Describe => inner.Describe;
        public string Bucket => inner.Bucket;

        public Task PutAsync(string key, Stream content, string contentType, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            return inner.PutAsync(key, content, contentType, cancellationToken);
        }
    }
}
