namespace AgentWorker.Http;

/// <summary>RFC 9457 problem+json responses.</summary>
internal static class Problems
{
    public static IResult Create(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);

    /// <summary>400 naming each bad field; the detail line names them too, for clients that only print one line.</summary>
    public static IResult Invalid(IReadOnlyDictionary<string, string[]> errors) =>
        TypedResults.ValidationProblem(
            errors,
            detail: string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")),
            title: "Invalid job request");

    public static IResult NotFound(string id) => Create(StatusCodes.Status404NotFound, "Job not found", $"no job with id '{id}'");
}
