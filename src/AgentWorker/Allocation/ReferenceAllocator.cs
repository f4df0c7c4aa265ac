using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Http;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace AgentWorker.Allocation;

/// <summary>One instance of the reference allocator's pool file.</summary>
internal sealed record PoolInstance(string Id, string? McpConnectionUrl, string? ApiUrl)
{
    public JsonObject ToJson() => new() { ["id"] = Id, ["mcp_connection_url"] = McpConnectionUrl, ["api_url"] = ApiUrl };
}

/// <summary>The pool file is unreadable or invalid; the message names the file and the entry.</summary>
internal sealed class PoolFileException(string message) : Exception(message);

/// <summary>
/// `agent-worker allocator serve --pool FILE`: a small allocator speaking the seed's API, for tests and single-host setups.
/// <c>POST /borrow</c> lends the first free instance (503 when none is free); <c>POST /return</c> takes back a lent instance
/// whose body matches what was lent (409 when it is not lent, 400 when the body differs); <c>GET /instances</c> shows each
/// instance with its borrow and return counts.
/// </summary>
internal sealed class ReferenceAllocator
{
    private readonly List<PoolInstance> _pool;
    private readonly Dictionary<string, (bool Lent, int Borrows, int Returns)> _state;

    public ReferenceAllocator(IReadOnlyList<PoolInstance> pool)
    {
        _pool = [.. pool];
        _state = pool.ToDictionary(i => i.Id, _ => (false, 0, 0), StringComparer.Ordinal);
    }

    public static IReadOnlyList<PoolInstance> ReadPool(string file)
    {
        List<Dictionary<string, string?>>? entries;
        try
        {
            var yaml = new DeserializerBuilder().Build().Deserialize<Dictionary<string, List<Dictionary<string, string?>>>?>(File.ReadAllText(file));
            entries = yaml?.GetValueOrDefault("instances");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PoolFileException($"pool file {file}: cannot read it: {e.Message}");
        }
        catch (YamlException e)
        {
            throw new PoolFileException($"pool file {file}: line {e.Start.Line}: expected `instances:` with a list of {{id, mcp_connection_url, api_url}}");
        }
        if (entries is not { Count: > 0 })
            throw new PoolFileException($"pool file {file}: `instances:` must list at least one instance");
        var pool = new List<PoolInstance>();
        foreach (var (entry, index) in entries.Select((e, i) => (e, i)))
        {
            if (entry.GetValueOrDefault("id") is not { Length: > 0 } id)
                throw new PoolFileException($"pool file {file}: instances[{index}].id: required");
            if (pool.Any(p => p.Id == id))
                throw new PoolFileException($"pool file {file}: instances[{index}].id: '{id}' is listed twice");
            pool.Add(new PoolInstance(id, entry.GetValueOrDefault("mcp_connection_url"), entry.GetValueOrDefault("api_url")));
        }
        return pool;
    }

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/borrow", () =>
        {
            lock (_state)
            {
                var free = _pool.FirstOrDefault(i => !_state[i.Id].Lent);
                if (free is null)
                    return Problems.Create(StatusCodes.Status503ServiceUnavailable, "No free instance", $"all {_pool.Count} instance(s) are lent");
                var (_, borrows, returns) = _state[free.Id];
                _state[free.Id] = (true, borrows + 1, returns);
                return Results.Content(free.ToJson().ToJsonString(), "application/json");
            }
        });
        app.MapPost("/return", async (HttpRequest request) =>
        {
            JsonObject? body;
            try
            {
                body = await JsonNode.ParseAsync(request.Body) as JsonObject;
            }
            catch (JsonException)
            {
                body = null;
            }
            if (body?["id"] is not JsonValue idValue || !idValue.TryGetValue<string>(out var id))
                return Problems.Create(StatusCodes.Status400BadRequest, "Invalid return", "id: required, the id of the lent instance");
            lock (_state)
            {
                if (_pool.FirstOrDefault(i => i.Id == id) is not { } instance || !_state[id].Lent)
                    return Problems.Create(StatusCodes.Status409Conflict, "Not lent", $"id: instance '{id}' is not lent out");
                if (!JsonNode.DeepEquals(body, instance.ToJson()))
                    return Problems.Create(StatusCodes.Status400BadRequest, "Invalid return", "body: must be the instance exactly as /borrow returned it");
                var (_, borrows, returns) = _state[id];
                _state[id] = (false, borrows, returns + 1);
                return Results.Ok(new { returned = id });
            }
        });
        app.MapGet("/instances", () =>
        {
            lock (_state)
                return Results.Ok(_pool.Select(i => new { id = i.Id, lent = _state[i.Id].Lent, borrows = _state[i.Id].Borrows, returns = _state[i.Id].Returns }).ToList());
        });
    }
}
