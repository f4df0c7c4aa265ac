using System.Text;
using System.Text.Json;
using AgentWorker.Core.Jobs;
using AgentWorker.Core.Sinks;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Sinks;

/// <summary>The webhook sink against a real HTTP server on loopback.</summary>
public sealed class WebhookSinkTests : IDisposable
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("shared-secret-0123456789");
    private readonly HttpClient _http = new(new SocketsHttpHandler { AllowAutoRedirect = false });

    private static JobNotice Notice() => JobNotice.For(new JobRecord
    {
        Spec = new JobSpec { Id = "job-7", Agent = "ssot_auditor", Repo = new RepoRef("https://git.example/app.git", "main") },
        State = JobState.Succeeded,
        Attempts = 1,
        CreatedAt = DateTimeOffset.UnixEpoch,
        UpdatedAt = DateTimeOffset.UnixEpoch,
        RunAt = DateTimeOffset.UnixEpoch,
        Result = new Results.JobResult { HealthScore = 90 },
    }, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task DeliverAsync_PostsSignedJson_TheReceiverCanVerify()
    {
        using var receiver = WebhookReceiver.Start(_ => 204);
        var notice = Notice();

        await new WebhookSink(_http, receiver.Url, Secret).DeliverAsync(notice, CancellationToken.None);

        var request = Assert.Single(receiver.Requests);
        Assert.Equal(("POST", "/hook?token=in-the-query"), (request.Method, request.PathAndQuery));
        Assert.True(WebhookSink.Verify(Secret, request.Body, request.Header(WebhookSink.SignatureHeader)));
        Assert.False(WebhookSink.Verify(Encoding.UTF8.GetBytes("another-secret-0123456789"), request.Body, request.Header(WebhookSink.SignatureHeader)));
        Assert.Equal(("job.succeeded", notice.DeliveryId), (request.Header(WebhookSink.EventHeader), request.Header(WebhookSink.DeliveryHeader)));
        using var body = JsonDocument.Parse(request.Body);
        Assert.Equal("job.succeeded", body.RootElement.GetProperty("event").GetString());
        Assert.Equal(notice.DeliveryId, body.RootElement.GetProperty("deliveryId").GetString());
        var job = body.RootElement.GetProperty("job");
        Assert.Equal(("job-7", "succeeded", 90), (job.GetProperty("id").GetString(), job.GetProperty("state").GetString(), job.GetProperty("result").GetProperty("healthScore").GetInt32()));
    }

    [Fact]
    public void Name_LeavesOutPathAndQuery()
    {
        var sink = new WebhookSink(_http, new Uri("https://hooks.example/services/T000/SECRET?token=abc"), Secret);

        Assert.Equal("webhook https://hooks.example", sink.Name);
    }

    [Theory]
    [InlineData(500, true)]
    [InlineData(503, true)]
    [InlineData(429, true)]
    [InlineData(408, true)]
    [InlineData(400, false)]
    [InlineData(401, false)]
    [InlineData(404, false)]
    [InlineData(302, false)]
    public async Task DeliverAsync_ErrorAnswer_IsTransientOnlyWhenRetryingCanHelp(int status, bool transient)
    {
        using var receiver = WebhookReceiver.Start(_ => status);

        var error = await Assert.ThrowsAsync<SinkException>(() => new WebhookSink(_http, receiver.Url, Secret).DeliverAsync(Notice(), CancellationToken.None));

        Assert.Equal(transient, error.Transient);
        Assert.Contains($"HTTP {status}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeliverAsync_NobodyListening_IsTransient()
    {
        Uri url;
        using (var receiver = WebhookReceiver.Start(_ => 200))
            url = receiver.Url;

        var error = await Assert.ThrowsAsync<SinkException>(() => new WebhookSink(_http, url, Secret).DeliverAsync(Notice(), CancellationToken.None));

        Assert.True(error.Transient);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sha256=")]
    [InlineData("sha256=zz")]
    [InlineData("sha1=00")]
    public void Verify_MalformedHeader_IsFalse(string? header) => Assert.False(WebhookSink.Verify(Secret, "{}"u8, header));

    public void Dispose() => _http.Dispose();
}
