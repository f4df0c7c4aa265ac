using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Workspace;

namespace AgentWorker.Core.Jobs;

/// <summary>
/// Normalizes the three accepted request shapes (DESIGN.md "Job model") into a <see cref="JobSpec"/>:
/// native camelCase (<c>repo: {url, branch, commit}</c>, <c>agent</c>, <c>mcpUrl</c>), the seed /queue shape
/// (<c>agentId</c>, <c>repoUrl</c>) and the seed reliable-queue shape (<c>repo_url</c>, <c>mcp_connection_url</c>).
/// Unknown fields are kept in <c>metadata</c>. Errors name the field as the client spelled it.
/// </summary>
public static class JobRequestParser
{
    public const int MaxIdLength = 128;
    public const int MaxCommitMessageLength = 4096;

    /// <summary>What <see cref="TryParseNetwork"/> accepts, as an error message.</summary>
    public const string NetworkRule = "must be none, mcp_only, allowlist or full";
    private const string AllowHostsField = "allowHosts";
    private const string BudgetField = "budget";

    private static readonly string[] AgentNames = ["agent", "agentId", "agent_id"];
    private static readonly string[] RepoUrlNames = ["repoUrl", "repo_url"];
    private static readonly string[] McpNames = ["mcpUrl", "mcp_connection_url", "mcpConnectionUrl"];
    private static readonly string[] TimeoutNames = ["timeoutSeconds", "timeout_seconds"];
    private static readonly string[] MaxAttemptsNames = ["maxAttempts", "max_attempts"];
    private static readonly string[] RunAtNames = ["runAt", "run_at"];
    private static readonly string[] CreateBranchNames = ["createBranch", "create_branch"];
    private static readonly string[] CommitMessageNames = ["commitMessage", "commit_message"];
    private static readonly HashSet<string> Known =
    [
        "id", "repo", "branch", "commit", "prompt", "mode", "network", AllowHostsField, BudgetField, "priority", "metadata",
        .. AgentNames, .. RepoUrlNames, .. McpNames, .. TimeoutNames, .. MaxAttemptsNames, .. RunAtNames,
        .. CreateBranchNames, .. CommitMessageNames,
    ];

    /// <summary>
    /// Parses and validates <paramref name="body"/> against a registry: besides the agent's id, its network rules
    /// (a job may not widen its agent's allow list, see <see cref="AgentDefinition.JobNetworkProblem"/>).
    /// </summary>
    public static JobParseResult Parse(JsonNode? body, AgentRegistry agents, string? defaultAgent, Func<string> newId) =>
        Parse(body, id => agents.Find(id) is not null, defaultAgent, newId, agents.Find);

    /// <summary>
    /// Parses and validates <paramref name="body"/>. <paramref name="agentExists"/> says whether an agent id is registered;
    /// <paramref name="findAgent"/>, when given, lets the job's network request be checked against its agent.
    /// </summary>
    public static JobParseResult Parse(JsonNode? body, Func<string, bool> agentExists, string? defaultAgent, Func<string> newId, Func<string, AgentDefinition?>? findAgent = null)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        // The first problem found for a field is the one reported.
        void Error(string field, string message) => errors.TryAdd(field, [message]);

        if (body is not JsonObject obj)
        {
            Error("body", "must be a JSON object");
            return new JobParseResult(null, errors);
        }
        if (FindUnstorableText(obj, "body") is { } unstorable)
        {
            Error(unstorable.Field, unstorable.Problem);
            return new JobParseResult(null, errors);
        }

        var id = ReadString(obj, "id", Error);
        if (id is null)
            id = newId();
        else if (!IsValidId(id))
            Error("id", IdRule);

        var (agentField, agent) = ReadFirstString(obj, AgentNames, Error);
        if (agent is not null && !agentExists(agent))
            Error(agentField!, $"unknown agent '{agent}'");
        else if (agent is null && defaultAgent is null)
            Error(agentField ?? "agent", "required: this worker has no default agent (DEFAULT_AGENT)");

        var repo = ReadRepo(obj, Error);
        var prompt = ReadString(obj, "prompt", Error);

        var mode = JobMode.DryRun;
        if (ReadString(obj, "mode", Error) is { } modeText)
        {
            if (modeText == "apply")
                mode = JobMode.Apply;
            else if (modeText != "dry_run")
                Error("mode", "must be dry_run or apply");
        }
        if (mode == JobMode.Apply && repo is { Branch: null })
            Error("branch", "required in apply mode: the branch the changes are pushed to");
        var (createBranchField, createBranch) = ReadFirstBool(obj, CreateBranchNames, Error);
        var (commitMessageField, commitMessage) = ReadFirstString(obj, CommitMessageNames, Error);
        if (mode != JobMode.Apply && (createBranch || commitMessage is not null))
            Error(createBranch ? createBranchField! : commitMessageField!, "only meaningful in apply mode (mode: apply)");
        if (commitMessage is { Length: > MaxCommitMessageLength })
            Error(commitMessageField!, $"must be at most {MaxCommitMessageLength} characters");

        NetworkMode? network = null;
        var networkText = ReadString(obj, "network", Error);
        if (networkText is not null)
        {
            if (TryParseNetwork(networkText, out var parsedNetwork))
                network = parsedNetwork;
            else
                Error("network", NetworkRule);
        }
        var allowHosts = ReadAllowHosts(obj, Error);
        if (allowHosts is not null)
        {
            // Naming hosts asks for an allow list.
            network ??= NetworkMode.Allowlist;
            if (network != NetworkMode.Allowlist)
                Error(AllowHostsField, $"only used with network allowlist, not {networkText}");
        }

        var (mcpField, mcpUrl) = ReadFirstString(obj, McpNames, Error);
        if (mcpUrl is not null && !(Uri.TryCreate(mcpUrl, UriKind.Absolute, out var mcp) && mcp.Scheme is "http" or "https" or "ws" or "wss"))
            Error(mcpField!, "must be an absolute http(s) or ws(s) URL");
        if (network == NetworkMode.McpOnly && mcpUrl is null)
            Error("network", "mcp_only needs an MCP URL (mcpUrl)");

        var budget = ReadBudget(obj, Error);
        var timeout = ReadInt(obj, TimeoutNames, 1, 86_400, Error);
        var maxAttempts = ReadInt(obj, MaxAttemptsNames, 1, 100, Error);
        var priority = ReadInt(obj, ["priority"], -1000, 1000, Error);
        DateTimeOffset? runAt = null;
        var (runAtField, runAtText) = ReadFirstString(obj, RunAtNames, Error);
        if (runAtText is not null)
        {
            if (DateTimeOffset.TryParse(runAtText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
                runAt = parsed;
            else
                Error(runAtField!, "must be an ISO 8601 date-time");
        }

        var metadata = obj["metadata"] switch
        {
            null => new JsonObject(),
            JsonObject m => (JsonObject)m.DeepClone(),
            _ => null,
        };
        if (metadata is null)
        {
            Error("metadata", "must be a JSON object");
            metadata = [];
        }
        foreach (var (name, value) in obj)
        {
            if (!Known.Contains(name))
                metadata[name] = value?.DeepClone();
        }

        if (errors.Count > 0 || repo is null)
            return new JobParseResult(null, errors);
        var job = new JobSpec
        {
            Id = id,
            Agent = agent,
            Repo = repo,
            Prompt = prompt,
            Mode = mode,
            CreateBranch = createBranch,
            CommitMessage = commitMessage,
            Network = network,
            AllowHosts = allowHosts,
            Budget = budget,
            McpUrl = mcpUrl,
            TimeoutSeconds = timeout,
            MaxAttempts = maxAttempts ?? 3,
            Priority = priority ?? 0,
            RunAt = runAt,
            Metadata = metadata.Count > 0 ? metadata : null,
        };
        if ((agent ?? defaultAgent) is { } agentId && findAgent?.Invoke(agentId)?.JobNetworkProblem(job) is var (field, problem))
        {
            Error(field, problem);
            return new JobParseResult(null, errors);
        }
        return new JobParseResult(job, errors);
    }

    /// <summary>What <see cref="IsValidId"/> accepts, as an error message: <c>^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$</c>.</summary>
    public const string IdRule = "must be 1-128 characters of ASCII letters, digits, '.', '_', ':' or '-', starting with a letter or digit";

    /// <summary>
    /// Whether <paramref name="id"/> can name a job everywhere it appears: a URL path segment (<c>.</c> and <c>..</c> would be
    /// resolved away), a file name, a CLI argument (a leading '-' reads as a flag). Seed ids (<c>test-001</c>, <c>job-123</c>),
    /// ULIDs and UUIDs fit.
    /// </summary>
    public static bool IsValidId(string id) =>
        id.Length is > 0 and <= MaxIdLength && char.IsAsciiLetterOrDigit(id[0])
        && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-');

    public static bool TryParseNetwork(string text, out NetworkMode network)
    {
        (var ok, network) = text switch
        {
            "none" => (true, NetworkMode.None),
            "mcp_only" => (true, NetworkMode.McpOnly),
            "allowlist" => (true, NetworkMode.Allowlist),
            "full" => (true, NetworkMode.Full),
            _ => (false, NetworkMode.None),
        };
        return ok;
    }

    /// <summary>
    /// The first place in <paramref name="node"/> a store could not keep or a reader would stumble over: a property
    /// given twice, a string that is not Unicode (a lone surrogate escape, bytes that are not UTF-8) or holds NUL,
    /// which PostgreSQL text and jsonb refuse and process arguments cannot carry. JsonNode decodes lazily, so
    /// without this walk such text would throw wherever it is first read: in a store, or when the job is shown.
    /// </summary>
    private static (string Field, string Problem)? FindUnstorableText(JsonNode? node, string path)
    {
        const string NotUnicode = "holds text that is not valid Unicode (a lone surrogate escape or bytes that are not UTF-8)";
        const string HasNul = "must not contain NUL characters (\\u0000)";
        switch (node)
        {
            case JsonObject obj:
                List<KeyValuePair<string, JsonNode?>> members;
                try
                {
                    // JsonObject decodes names and notices a repeated one only when it is first read.
                    members = [.. obj];
                }
                catch (ArgumentException)
                {
                    return (path, "has a property given more than once");
                }
                catch (InvalidOperationException)
                {
                    return (path, "has a property name that is not valid Unicode (a lone surrogate escape or bytes that are not UTF-8)");
                }
                foreach (var (name, value) in members)
                {
                    if (name.Contains('\0', StringComparison.Ordinal))
                        return (path, "has a property name with a NUL character (\\u0000)");
                    if (FindUnstorableText(value, Member(path, name)) is { } found)
                        return found;
                }
                return null;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (FindUnstorableText(array[i], $"{path}[{i}]") is { } found)
                        return found;
                }
                return null;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                try
                {
                    return value.GetValue<string>().Contains('\0', StringComparison.Ordinal) ? (path, HasNul) : null;
                }
                catch (InvalidOperationException)
                {
                    return (path, NotUnicode);
                }
            default:
                return null;
        }
    }

    /// <summary>How an error names a member: as the client spelled it, or quoted when that would not show.</summary>
    private static string Member(string path, string name) =>
        string.IsNullOrWhiteSpace(name) || name.Any(char.IsControl) ? $"{path}[{JsonSerializer.Serialize(name)}]"
        : path == "body" ? name
        : $"{path}.{name}";

    private static RepoRef? ReadRepo(JsonObject obj, Action<string, string> error)
    {
        string urlField;
        string? url;
        string? branch;
        string? commit;
        if (obj["repo"] is JsonObject repo)
        {
            urlField = "repo.url";
            url = ReadString(repo, "url", error, "repo.url");
            branch = ReadString(repo, "branch", error, "repo.branch") ?? ReadString(obj, "branch", error);
            commit = ReadString(repo, "commit", error, "repo.commit") ?? ReadString(obj, "commit", error);
        }
        else
        {
            if (obj["repo"] is not null)
            {
                error("repo", "must be an object {url, branch, commit}");
                return null;
            }
            (var field, url) = ReadFirstString(obj, RepoUrlNames, error);
            // Name the field in the client's own dialect when it is missing.
            urlField = field ?? (obj.ContainsKey("repo_url") || obj.ContainsKey("mcp_connection_url") || obj.ContainsKey("prompt") && !obj.ContainsKey("agentId") ? "repo_url" : "repoUrl");
            branch = ReadString(obj, "branch", error);
            commit = ReadString(obj, "commit", error);
        }
        if (url is null)
        {
            error(urlField, "required");
            return null;
        }
        if (RepoUrls.Validate(url) is { } problem)
        {
            error(urlField, problem);
            return null;
        }
        if (branch is not null && !IsSafeRef(branch))
        {
            error("branch", "is not a valid branch name");
            return null;
        }
        if (commit is not null && !(commit.Length is >= 4 and <= 64 && commit.All(char.IsAsciiHexDigit)))
        {
            error("commit", "must be a hexadecimal commit id");
            return null;
        }
        return new RepoRef(url, branch, commit);
    }

    private static bool IsSafeRef(string name) =>
        name.Length is > 0 and <= 255 && !name.StartsWith('-') && !name.Contains("..", StringComparison.Ordinal)
        && name.All(c => !char.IsControl(c) && c is not (' ' or '~' or '^' or ':' or '?' or '*' or '[' or '\\'));

    /// <summary>The job's <c>allowHosts</c> in canonical form, or null when absent; a bad entry is an error naming it.</summary>
    private static List<string>? ReadAllowHosts(JsonObject obj, Action<string, string> error)
    {
        if (obj[AllowHostsField] is not { } node)
            return null;
        if (node is not JsonArray array || array.Any(e => e?.GetValueKind() != JsonValueKind.String))
        {
            error(AllowHostsField, "must be a list of host entries (host, *.domain, optional :port)");
            return null;
        }
        var hosts = new List<string>();
        foreach (var entry in array)
        {
            try
            {
                hosts.Add(HostPattern.Parse(entry!.GetValue<string>()).ToString());
            }
            catch (FormatException e)
            {
                error(AllowHostsField, e.Message);
                return null;
            }
        }
        return hosts;
    }

    private static (string? Field, string? Value) ReadFirstString(JsonObject obj, string[] names, Action<string, string> error)
    {
        foreach (var name in names)
        {
            if (obj.ContainsKey(name))
                return (name, ReadString(obj, name, error));
        }
        return (null, null);
    }

    private static string? ReadString(JsonObject obj, string name, Action<string, string> error, string? field = null)
    {
        var node = obj[name];
        if (node is null)
            return null;
        if (node.GetValueKind() != JsonValueKind.String)
        {
            error(field ?? name, "must be a string");
            return null;
        }
        var value = node.GetValue<string>();
        return value.Length == 0 ? null : value;
    }

    private static (string? Field, bool Value) ReadFirstBool(JsonObject obj, string[] names, Action<string, string> error)
    {
        foreach (var name in names)
        {
            if (obj[name] is not { } node)
                continue;
            if (node.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
                return (name, node.GetValue<bool>());
            error(name, "must be true or false");
            return (name, false);
        }
        return (null, false);
    }

    /// <summary>The job's <c>budget</c> (it narrows its agent's), or null when absent; each bad field is an error naming it.</summary>
    private static Gateway.ModelBudget? ReadBudget(JsonObject obj, Action<string, string> error)
    {
        if (obj[BudgetField] is not { } node)
            return null;
        if (node is not JsonObject budget)
        {
            error(BudgetField, "must be an object with maxRequests, maxTokens and/or maxCostUsd");
            return null;
        }
        foreach (var (name, _) in budget)
        {
            if (name is not ("maxRequests" or "maxTokens" or "maxCostUsd"))
                error($"{BudgetField}.{name}", "not a budget field: maxRequests, maxTokens or maxCostUsd");
        }
        var maxRequests = ReadInt(budget, ["maxRequests"], 1, int.MaxValue, (name, message) => error($"{BudgetField}.{name}", message));
        long? maxTokens = null;
        if (budget["maxTokens"] is { } tokens)
        {
            if (tokens.GetValueKind() == JsonValueKind.Number && tokens.AsValue().TryGetValue<long>(out var value) && value > 0)
                maxTokens = value;
            else
                error($"{BudgetField}.maxTokens", "must be a positive whole number of tokens");
        }
        decimal? maxCost = null;
        if (budget["maxCostUsd"] is { } cost)
        {
            if (cost.GetValueKind() == JsonValueKind.Number && cost.AsValue().TryGetValue<decimal>(out var value) && value > 0)
                maxCost = value;
            else
                error($"{BudgetField}.maxCostUsd", "must be a positive number of US dollars");
        }
        return new Gateway.ModelBudget(maxRequests, maxTokens, maxCost);
    }

    private static int? ReadInt(JsonObject obj, string[] names, int min, int max, Action<string, string> error)
    {
        foreach (var name in names)
        {
            var node = obj[name];
            if (node is null)
                continue;
            if (node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue<int>(out var value) && value >= min && value <= max)
                return value;
            error(name, $"must be a whole number from {min} to {max}");
            return null;
        }
        return null;
    }
}

/// <summary>Either a valid <see cref="Job"/> or field → messages.</summary>
public sealed record JobParseResult(JobSpec? Job, IReadOnlyDictionary<string, string[]> Errors);
