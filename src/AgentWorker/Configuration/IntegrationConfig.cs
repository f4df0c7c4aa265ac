using AgentWorker.Artifacts.S3;

namespace AgentWorker.Configuration;

/// <summary>The llm agent's endpoint, default model and key (handed to that agent only).</summary>
internal sealed record LlmSettings(Uri BaseUrl, string Model, string? ApiKey);

/// <summary>Validated settings of the seed integrations: tasks-table intake, S3 artifacts, instance allocator, llm agent.</summary>
internal sealed record IntegrationConfig
{
    public const string HttpIntake = "http";
    public const string TasksIntake = "postgres-tasks";

    public required string Intake { get; init; }
    public string? AgentId { get; init; }
    public required TimeSpan PollInterval { get; init; }
    public required TimeSpan TaskTimeout { get; init; }

    /// <summary>Null: artifacts are listed on the job but not stored.</summary>
    public S3Options? S3 { get; init; }

    public Uri? AllocatorUrl { get; init; }
    public required LlmSettings Llm { get; init; }

    public bool PollsTasks => Intake == TasksIntake;

    public static IntegrationConfig Load(ConfigValues values)
    {
        var intake = values.GetChoice(Settings.Intake, HttpIntake, TasksIntake);
        var agentId = values.Get(Settings.AgentId);
        if (intake == TasksIntake)
        {
            if (values.Get(Settings.PostgresUrl) is null)
                throw values.Invalid(Settings.Intake, "postgres-tasks needs the tasks database (--postgres-url / POSTGRES_URL or POSTGRES_DSN)");
            if (agentId is null)
                throw values.Invalid(Settings.AgentId, "postgres-tasks needs the agent whose tasks to run (--agent-id / AGENT_ID)");
        }
        if (agentId is not null && (agentId.Length > 64 || !agentId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw values.Invalid(Settings.AgentId, "must be 1-64 letters, digits, '-', '_' or '.' (it is part of artifact keys)");

        return new IntegrationConfig
        {
            Intake = intake,
            AgentId = agentId,
            PollInterval = TimeSpan.FromSeconds(values.GetNumber(Settings.PollInterval, 0.05, 3_600)),
            TaskTimeout = TimeSpan.FromSeconds(values.GetInt(Settings.RunTaskTimeout, 1, 86_400)),
            S3 = LoadS3(values),
            AllocatorUrl = values.Get(Settings.AllocatorApiUrl) is { } allocator ? HttpUrl(values, Settings.AllocatorApiUrl, allocator) : null,
            Llm = new LlmSettings(
                HttpUrl(values, Settings.LlmBaseUrl, values.Get(Settings.LlmBaseUrl) ?? ""),
                values.Get(Settings.LlmModel) is { Length: > 0 } model ? model : throw values.Invalid(Settings.LlmModel, "must not be empty"),
                values.Get(Settings.LlmApiKey)),
        };
    }

    private static S3Options? LoadS3(ConfigValues values)
    {
        if (values.Get(Settings.MinioEndpoint) is not { } endpoint)
            return null;
        var secure = values.GetBool(Settings.MinioSecure);
        var options = new S3Options
        {
            Endpoint = endpoint,
            AccessKey = values.Get(Settings.MinioAccessKey) ?? throw values.Invalid(Settings.MinioAccessKey, "required with MINIO_ENDPOINT"),
            SecretKey = values.Get(Settings.MinioSecretKey) ?? throw values.Invalid(Settings.MinioSecretKey, "required with MINIO_ENDPOINT"),
            Secure = secure,
            Bucket = values.Get(Settings.MinioBucket) is { } bucket && IsBucketName(bucket)
                ? bucket
                : throw values.Invalid(Settings.MinioBucket, "must be 3-63 lowercase letters, digits, '.' or '-'"),
        };
        Uri url;
        try
        {
            url = options.ServiceUrl;
        }
        catch (UriFormatException)
        {
            throw values.Invalid(Settings.MinioEndpoint, $"'{endpoint}' is not host:port or an http(s) URL");
        }
        if (url.Scheme is not ("http" or "https") || url.Host.Length == 0 || url.UserInfo.Length > 0)
            throw values.Invalid(Settings.MinioEndpoint, $"'{endpoint}' is not host:port or an http(s) URL without credentials");
        return options;
    }

    private static bool IsBucketName(string name) =>
        name.Length is >= 3 and <= 63 && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-');

    /// <summary>An absolute http(s) URL without credentials, or the setting is invalid.</summary>
    public static Uri HttpUrl(ConfigValues values, Setting setting, string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) && url.Scheme is "http" or "https" && url.UserInfo.Length == 0
            ? url
            : throw values.Invalid(setting, $"'{text}' is not an http(s) URL without credentials");
}
