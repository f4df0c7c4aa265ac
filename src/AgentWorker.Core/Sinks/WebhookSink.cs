using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace AgentWorker.Core.Sinks;

/// <summary>
/// POSTs each state change as JSON to one URL, signed with HMAC-SHA256 over the exact body:
/// <c>X-AgentWorker-Signature-256: sha256=&lt;hex&gt;</c> (GitHub's format). 2xx is delivered; 408, 425, 429, 5xx and
/// network errors are retried; other answers (and redirects, which are not followed) are final.
/// </summary>
public sealed class WebhookSink(HttpClient http, Uri url, byte[] secret) : IJobSink
{
    public const string SignatureHeader = "X-AgentWorker-Signature-256";
    public const string EventHeader = "X-AgentWorker-Event";
    public const string DeliveryHeader = "X-AgentWorker-Delivery";

    // Scheme, host and port only: paths and queries of webhook URLs often carry tokens.
    public string Name { get; } = $"webhook {url.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped)}";

    public bool Accepts(JobNotice notice) => true;

    public async Task DeliverAsync(JobNotice notice, CancellationToken cancellationToken)
    {
        var body = notice.ToJson();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.Add(SignatureHeader, Sign(secret, body));
        request.Headers.Add(EventHeader, notice.Event);
        request.Headers.Add(DeliveryHeader, notice.DeliveryId);
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("agent-worker", "1"));
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new SinkException(e.HttpRequestError == HttpRequestError.Unknown ? e.Message : $"{e.HttpRequestError}: {e.Message}", transient: true);
        }
        using (response)
        {
            if (response.IsSuccessStatusCode)
                return;
            var status = (int)response.StatusCode;
            var retryAfter = response.Headers.RetryAfter switch
            {
                { Delta: { } delta } => delta,
                { Date: { } date } => date - DateTimeOffset.UtcNow,
                _ => (TimeSpan?)null,
            };
            var transient = status is 408 or 425 or 429 or >= 500;
            var detail = status is >= 300 and < 400 ? " (redirects are not followed)" : "";
            throw new SinkException($"HTTP {status} {response.ReasonPhrase}{detail}", transient, retryAfter is { Ticks: > 0 } ? retryAfter : null);
        }
    }

    /// <summary>The signature header's value for <paramref name="body"/>: <c>sha256=</c> and the lower-case hex HMAC-SHA256.</summary>
    public static string Sign(byte[] secret, ReadOnlySpan<byte> body) => "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(secret, body));

    /// <summary>Checks a signature header in constant time (for receivers written in .NET, and the tests).</summary>
    public static bool Verify(byte[] secret, ReadOnlySpan<byte> body, string? header)
    {
        const string Prefix = "sha256=";
        if (header is null || !header.StartsWith(Prefix, StringComparison.Ordinal))
            return false;
        byte[] presented;
        try
        {
            presented = Convert.FromHexString(header.AsSpan(Prefix.Length));
        }
        catch (FormatException)
        {
            return false;
        }
        return CryptographicOperations.FixedTimeEquals(presented, HMACSHA256.HashData(secret, body));
    }
}
