using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AgentWorker.Core.Sinks;
using AgentWorker.Testing;

namespace AgentWorker.Tests.Http;

/// <summary>Receipt, artifact and delivery routes: answers for jobs without them, and the queued webhook of an intake.</summary>
public sealed class JobOutputsApiTests
{
    private const string Agents = """
        agents:
          - id: noop
            command: ["true"]
        """;

    private static StringContent Job(string id) =>
        new($$"""{"id":"{{id}}","agent":"noop","repoUrl":"/srv/repo","mode":"apply","branch":"main"}""", Encoding.UTF8, "application/json");

    [Theory]
    [InlineData("/v1/jobs/nope/receipt", "Job not found")]
    [InlineData("/v1/jobs/nope/artifacts", "Job not found")]
    [InlineData("/v1/jobs/nope/artifacts/diff.patch", "Job not found")]
    [InlineData("/v1/jobs/nope/deliveries", "Job not found")]
    [InlineData("/v1/jobs/waiting/receipt", "No receipt")]
    [InlineData("/v1/jobs/waiting/artifacts/diff.patch", "Artifact not found")]
    [InlineData("/v1/jobs/waiting/artifacts/..%2F..%2Fqueue.db", "Artifact not found")]
    public async Task Get_NothingToShow_IsA404Problem(string route, string title)
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        await host.Client.PostAsync("/v1/jobs", Job("waiting"));

        var response = await host.Client.GetAsync(route);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(title, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
    }

    [Fact]
    public async Task Get_WithoutToken_Is401()
    {
        await using var host = await ApiHost.StartAsync(agentsYaml: Agents);
        using var anonymous = new HttpClient { BaseAddress = host.Client.BaseAddress };

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/jobs/x/receipt")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/jobs/x/deliveries")).StatusCode);
    }

    [Fact]
    public async Task Submit_NewJob_IsDeliveredAsQueuedAndLogged_ARepeatIsNot()
    {
        using var receiver = WebhookReceiver.Start(_ => 200);
        var host = await ApiHost.StartAsync(
            new() { ["--webhook-url"] = receiver.Url.ToString(), ["--webhook-secret"] = "0123456789abcdef" }, agentsYaml: Agents);
        JsonElement log;
        try
        {
            await host.Client.PostAsync("/v1/jobs", Job("hooked"));
            await host.Client.PostAsync("/v1/jobs", Job("hooked"));
            log = await Eventually.UntilAsync(
                () => host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs/hooked/deliveries"),
                d => d.GetProperty("items").GetArrayLength() > 0,
                TimeSpan.FromSeconds(30),
                "delivery logged");
        }
        finally
        {
            // Stopping drains pending deliveries: whatever the repeat caused has arrived by then.
            await host.DisposeAsync();
        }

        var request = Assert.Single(receiver.Requests);
        Assert.Equal("job.queued", request.Header(WebhookSink.EventHeader));
        Assert.True(WebhookSink.Verify("0123456789abcdef"u8.ToArray(), request.Body, request.Header(WebhookSink.SignatureHeader)));
        var line = Assert.Single(log.GetProperty("items").EnumerateArray());
        Assert.Equal(("job.queued", "delivered", 1), (line.GetProperty("event").GetString(), line.GetProperty("outcome").GetString(), line.GetProperty("attempt").GetInt32()));
    }
}
