using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AgentWorker.Core.Allocation;

/// <summary>An allocator compatible with the seed's (<c>ip-allocator-webserver</c>): JSON over HTTP at <c>ALLOCATOR_API_URL</c>.</summary>
public sealed class HttpInstanceAllocator(HttpClient http, Uri baseUrl) : IInstanceAllocator
{
    public string Describe => baseUrl.GetLeftPart(UriPartial.Path);

    public async Task<BorrowedInstance> BorrowAsync(CancellationToken cancellationToken)
    {
        var body = await PostAsync("borrow", "{}", cancellationToken).ConfigureAwait(false);
        return Parse(body) ?? throw new AllocatorException($"{Describe}/borrow answered without an instance: expected JSON {{\"id\", \"mcp_connection_url\", \"api_url\"}}, got '{Truncate(body)}'");
    }

    public async Task ReturnAsync(BorrowedInstance instance, CancellationToken cancellationToken) =>
        await PostAsync("return", instance.Body, cancellationToken).ConfigureAwait(false);

    /// <summary>The instance in an allocator's answer, or null when it is not an object with a string <c>id</c>.</summary>
    public static BorrowedInstance? Parse(string body)
    {
        JsonObject? obj;
        try
        {
            obj = JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
        if (obj is null || Text(obj, "id") is not { Length: > 0 } id)
            return null;
        return new BorrowedInstance(id, Text(obj, "mcp_connection_url"), Text(obj, "api_url"), body);
    }

    private static string? Text(JsonObject obj, string name) =>
        obj[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private async Task<string> PostAsync(string operation, string json, CancellationToken cancellationToken)
    {
        var url = new Uri(baseUrl.AbsoluteUri.TrimEnd('/') + "/" + operation);
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsync(url, content, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new AllocatorException($"{Describe}/{operation}: {e.Message}", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new AllocatorException($"{Describe}/{operation}: no answer within {http.Timeout.TotalSeconds:0}s", e);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
                throw new AllocatorException($"{Describe}/{operation} answered {(int)response.StatusCode}: {Truncate(text)}");
            return text;
        }
    }

    private static string Truncate(string text) => text.Length <= 200 ? text.Trim() : text[..200] + "…";
}
