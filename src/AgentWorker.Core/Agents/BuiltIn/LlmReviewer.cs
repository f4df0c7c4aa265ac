using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Results;

namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// <c>llm</c>: sends the repository's text files (within a budget) to a model behind any OpenAI-compatible
/// <c>/chat/completions</c> endpoint and reports the findings it answers with. Configured through its environment, which
/// only this agent gets: <c>LLM_BASE_URL</c> and <c>OPENROUTER_API_KEY</c> (under a worker, the model gateway's URL and this
/// run's placeholder), <c>LLM_MODEL</c>, and <c>AGENT_WORKER_MODEL</c> when the job names a model.
/// </summary>
internal sealed class LlmReviewer : IBuiltInAgent
{
    public const string AgentId = "llm";
    public const string BaseUrlVariable = "LLM_BASE_URL";
    public const string DefaultBaseUrl = "https://openrouter.ai/api/v1";
    public const string ApiKeyVariable = "OPENROUTER_API_KEY";
    public const string ModelVariable = "LLM_MODEL";
    public const string JobModelVariable = "AGENT_WORKER_MODEL";

    private const int MaxPromptChars = 120_000;
    private const int MaxFileChars = 24_000;
    private const int Attempts = 3;
    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromSeconds(20);

    private const string Instructions = """
        You are a careful code reviewer. Review the repository below for bugs, security problems and maintainability issues.
        Answer with one JSON object and nothing else:
        {"summary": "<one sentence>", "findings": [{"severity": "critical|high|medium|low|info", "rule": "<short-kebab-case-id>",
          "file": "<path as given>", "line": <number or null>, "message": "<what is wrong and why>"}]}
        Report only real problems; an empty findings list is a valid answer. Lines are numbered "N| code".
        """;

    private const string DefaultTask = "Review this repository.";

    public string Id => AgentId;

    public string Description => "Reviews the repository with a model behind an OpenAI-compatible endpoint (LLM_BASE_URL, OPENROUTER_API_KEY; model per job) and reports its findings";

    public void Run(string workspace, string? prompt, AgentOutput output, CancellationToken cancellationToken)
    {
        var baseUrl = Environment.GetEnvironmentVariable(BaseUrlVariable) is { Length: > 0 } url && Uri.TryCreate(url, UriKind.Absolute, out var parsed)
            ? parsed
            : throw new AgentFailedException($"{BaseUrlVariable} is not set to an http(s) URL");
        var model = Environment.GetEnvironmentVariable(JobModelVariable) is { Length: > 0 } jobModel
            ? jobModel
            : Environment.GetEnvironmentVariable(ModelVariable) is { Length: > 0 } defaultModel ? defaultModel : throw new AgentFailedException($"no model: set {ModelVariable} or the job's model");
        var apiKey = Environment.GetEnvironmentVariable(ApiKeyVariable);

        var files = RepositoryFiles.List(workspace, output, cancellationToken);
        var (repository, included) = Describe(files, cancellationToken);
        output.Progress(10, $"asking {model} at {baseUrl.Host} about {included} of {files.Paths.Count} files");
        var request = new JsonObject
        {
            ["model"] = model,
            ["temperature"] = 0,
            ["messages"] = new JsonArray
            {
                new JsonObject { ["role"] = "system", ["content"] = Instructions },
                new JsonObject { ["role"] = "user", ["content"] = $"Task: {(string.IsNullOrWhiteSpace(prompt) ? DefaultTask : prompt)}\n\n{repository}" },
            },
        };
        var reply = Complete(baseUrl, apiKey, request.ToJsonString(), cancellationToken);
        var (summary, findings) = ParseReply(reply);
        foreach (var finding in findings)
            output.Finding(finding);
        output.Progress(100, $"{findings.Count} finding(s)");
        output.Result(summary ?? $"{model} reported {findings.Count} finding(s) in {included} files");
    }

    /// <summary>The files as numbered text, in path order, until the prompt budget is spent.</summary>
    private static (string Text, int Included) Describe(RepositoryFiles files, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var included = 0;
        foreach (var file in files.ReadTextFiles(cancellationToken))
        {
            var content = file.Text.Length <= MaxFileChars ? file.Text : file.Text[..MaxFileChars] + "\n… (truncated)";
            var numbered = string.Join('\n', content.Split('\n').Select((line, i) => $"{i + 1}| {line.TrimEnd('\r')}"));
            if (text.Length + numbered.Length > MaxPromptChars)
                break;
            text.Append("=== FILE: ").Append(file.Path).Append(" ===\n").Append(numbered).Append("\n\n");
            included++;
        }
        return (text.ToString(), included);
    }

    private static string Complete(Uri baseUrl, string? apiKey, string body, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        var endpoint = new Uri(baseUrl.AbsoluteUri.TrimEnd('/') + "/chat/completions");
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (apiKey is { Length: > 0 })
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            request.Headers.Add("X-Title", "AgentWorker");
            TimeSpan? wait;
            string problem;
            try
            {
                using var response = http.Send(request, cancellationToken);
                var text = new StreamReader(response.Content.ReadAsStream(cancellationToken)).ReadToEnd();
                if (response.IsSuccessStatusCode)
                    return text;
                problem = $"{endpoint.GetLeftPart(UriPartial.Path)} answered {(int)response.StatusCode}: {Short(text)}";
                // The gateway's refusals (a budget used up) say so: asking again would only be refused again.
                if (response.StatusCode != HttpStatusCode.TooManyRequests && (int)response.StatusCode < 500
                    || response.Headers.TryGetValues("x-should-retry", out var retry) && retry.Contains("false", StringComparer.OrdinalIgnoreCase))
                    throw new AgentFailedException(problem);
                wait = response.Headers.RetryAfter?.Delta;
            }
            catch (HttpRequestException e)
            {
                problem = $"{endpoint.GetLeftPart(UriPartial.Path)}: {e.Message}";
                wait = null;
            }
            if (attempt >= Attempts)
                throw new AgentFailedException($"{problem} (after {attempt} tries)");
            var delay = wait is { } w && w < MaxRetryAfter ? w : TimeSpan.FromSeconds(attempt);
            Console.Error.WriteLine($"llm: {problem}; retrying in {delay.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture)}s");
            Task.Delay(delay, cancellationToken).Wait(cancellationToken);
        }
    }

    /// <summary>The findings in a chat-completions answer whose message content is the JSON asked for (fenced or not).</summary>
    internal static (string? Summary, List<Finding> Findings) ParseReply(string reply)
    {
        string content;
        try
        {
            content = JsonNode.Parse(reply)?["choices"]?[0]?["message"]?["content"]?.GetValue<string>()
                ?? throw new AgentFailedException($"the endpoint's answer has no choices[0].message.content: {Short(reply)}");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new AgentFailedException($"the endpoint's answer is not chat-completions JSON: {Short(reply)}");
        }
        var start = content.IndexOf('{', StringComparison.Ordinal);
        var end = content.LastIndexOf('}');
        JsonObject? answer = null;
        if (start >= 0 && end > start)
        {
            try
            {
                answer = JsonNode.Parse(content[start..(end + 1)]) as JsonObject;
            }
            catch (JsonException)
            {
            }
        }
        if (answer?["findings"] is not JsonArray items)
            throw new AgentFailedException($"the model did not answer with the findings JSON: {Short(content)}");
        var findings = new List<Finding>();
        foreach (var item in items.OfType<JsonObject>())
        {
            var message = Text(item, "message");
            if (string.IsNullOrWhiteSpace(message))
                continue;
            var line = item["line"] is JsonValue v && v.TryGetValue<double>(out var number) && number is >= 1 and <= int.MaxValue ? (int?)number : null;
            findings.Add(new Finding(AgentMessage.NormalizeSeverity(Text(item, "severity")), Text(item, "rule") ?? "llm-review", Text(item, "file"), line, message.Trim()));
        }
        return (Text(answer, "summary"), findings);
    }

    private static string? Text(JsonObject obj, string name) => obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string Short(string text)
    {
        var flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= 300 ? flat : flat[..300] + "…";
    }
}

/// <summary>A built-in agent cannot do its work; <c>agent exec</c> prints the message on stderr and exits 1 (the attempt is retried).</summary>
internal sealed class AgentFailedException(string message) : Exception(message);
