using System.Security.Cryptography;
using System.Text;

namespace AgentWorker.Http;

/// <summary>
/// Requires <c>Authorization: Bearer &lt;key&gt;</c>. Both sides are hashed first so the comparison is
/// constant-time regardless of length. With no key configured the API is open (and bound to loopback).
/// </summary>
internal sealed class BearerAuthFilter(string? apiKey) : IEndpointFilter
{
    private readonly byte[]? _expected = apiKey is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (_expected is null || IsAuthorized(context.HttpContext.Request.Headers.Authorization.ToString()))
            return next(context);
        context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
        return ValueTask.FromResult<object?>(Problems.Create(StatusCodes.Status401Unauthorized, "Unauthorized",
            "send the API key as 'Authorization: Bearer <key>'"));
    }

    private bool IsAuthorized(string header)
    {
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
            return false;
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _expected);
    }
}

internal static class BearerAuth
{
    /// <summary>
    /// Puts the group's endpoints behind <see cref="BearerAuthFilter"/>. The filter is also endpoint metadata, which is how
    /// the OpenAPI document knows which operations need the token.
    /// </summary>
    public static RouteGroupBuilder RequireBearer(this RouteGroupBuilder group, string? apiKey)
    {
        var filter = new BearerAuthFilter(apiKey);
        return group.AddEndpointFilter(filter).WithMetadata(filter).ProducesProblem(StatusCodes.Status401Unauthorized);
    }
}
