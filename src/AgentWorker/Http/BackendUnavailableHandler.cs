using AgentWorker.Core.Queue;
using Microsoft.AspNetCore.Diagnostics;

namespace AgentWorker.Http;

/// <summary>
/// A request that failed because the queue backend cannot be reached is answered 503 problem+json with
/// <c>Retry-After</c>, not 500: the client did nothing wrong and may send the same request again.
/// </summary>
internal sealed class BackendUnavailableHandler(BackendHealth health) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!health.IsUnavailable(exception))
            return false;
        health.ReportDown(exception);
        var backend = health.Current;
        httpContext.Response.Headers.RetryAfter = "5";
        await Problems.Create(
            StatusCodes.Status503ServiceUnavailable,
            "Queue backend unavailable",
            $"the {backend.Name} backend cannot be reached ({backend.Error}); try again shortly: a job sent again with the same id is stored once").ExecuteAsync(httpContext);
        return true;
    }
}
