namespace AgentWorker.Configuration;

/// <summary>One configuration setting: its flag, the environment names that set it (seed names first), default and help.</summary>
internal sealed record Setting(string Key, string Flag, string[] Env, string? Default, string Help, bool Secret = false);

/// <summary>Every setting the worker reads. The one place that names flags, environment variables and defaults.</summary>
internal static class Settings
{
    public static readonly Setting ConfigFile = new("config", "--config", ["AGENT_WORKER_CONFIG", "WORKER_CONFIG"], null, "YAML file with settings (keys as in `config show`); ~/.config/agent-worker/config.yaml is read when it exists.");
    public static readonly Setting DataDir = new("dataDir", "--data-dir", ["AGENT_WORKER_DATA"], "./.agent-worker", "Directory of the embedded SQLite queue.");
    public static readonly Setting Backend = new("backend", "--backend", ["AGENT_WORKER_BACKEND"], null, "Queue backend: sqlite, redis or postgres (default: redis when REDIS_URL is set, postgres when POSTGRES_URL is, else sqlite).");
    public static readonly Setting RedisUrl = new("redisUrl", "--redis-url", ["REDIS_URL"], null, "Redis connection (redis://[user:pass@]host:port[/db]).", Secret: true);
    public static readonly Setting QueueName = new("queueName", "--queue-name", ["QUEUE_NAME"], "agent_jobs", "Redis list producers LPUSH raw job JSON onto (and the prefix of the backend's keys).");
    public static readonly Setting PostgresUrl = new("postgresUrl", "--postgres-url", ["POSTGRES_URL", "POSTGRES_DSN"], null, "PostgreSQL connection (postgresql://user:pass@host:port/db or key=value).", Secret: true);
    public static readonly Setting PostgresSchema = new("postgresSchema", "--postgres-schema", ["POSTGRES_SCHEMA"], "agent_worker", "Schema the PostgreSQL backend keeps its tables in.");
    public static readonly Setting WorkDir = new("workDir", "--work-dir", ["WORK_DIR"], "/tmp/agent-worker", "Where job workspaces are created.");
    public static readonly Setting Port = new("port", "--port", ["PORT"], "3000", "HTTP port of `serve`.");
    public static readonly Setting Host = new("host", "--host", ["HOST"], null, "HTTP listen address (default 0.0.0.0 with an API key, 127.0.0.1 without).");
    public static readonly Setting PublicUrl = new("publicUrl", "--public-url", ["PUBLIC_URL"], null, "Base URL clients reach the API at (e.g. https://worker.example); the OpenAPI document's `servers`. Unset = no `servers` entry (never the request's Host header).");
    public static readonly Setting Workers = new("workers", "--workers", ["WORKERS"], "2", "Worker slots (jobs run at once) per process.");
    public static readonly Setting ApiKey = new("apiKey", "--api-key", ["WORKER_API_KEY", "AGENT_WEBHOOK_SECRET"], null, "Bearer token for the HTTP API.", Secret: true);
    public static readonly Setting RateLimit = new("rateLimitPerMinute", "--rate-limit-per-minute", ["RATE_LIMIT_PER_MINUTE"], "30", "Intake requests per client per minute (0 = off).");
    public static readonly Setting MaxQueueDepth = new("maxQueueDepth", "--max-queue-depth", ["MAX_QUEUE_DEPTH"], "100", "Refuse intake (503) at this many waiting jobs (0 = off).");
    public static readonly Setting MaxBodyBytes = new("maxBodyBytes", "--max-body-bytes", ["MAX_BODY_BYTES"], "1048576", "Largest accepted request body.");
    public static readonly Setting AgentsFile = new("agents", "--agents", ["AGENTS_FILE"], null, "Agent registry file (YAML).");
    public static readonly Setting DefaultAgent = new("defaultAgent", "--default-agent", ["DEFAULT_AGENT"], null, "Agent for jobs that name none.");
    public static readonly Setting JobTimeout = new("jobTimeoutSeconds", "--job-timeout", ["JOB_TIMEOUT_SECONDS"], "300", "Default agent timeout in seconds.");
    public static readonly Setting LeaseSeconds = new("leaseSeconds", "--lease-seconds", ["LEASE_SECONDS"], "30", "Lease length; a job whose worker stops renewing is re-run after it.");
    public static readonly Setting HeartbeatSeconds = new("heartbeatSeconds", "--heartbeat-seconds", ["HEARTBEAT_SECONDS"], "10", "How often running jobs renew their lease (must be below the lease).");
    public static readonly Setting RetryBaseDelay = new("retryBaseDelaySeconds", "--retry-base-delay", ["RETRY_BASE_DELAY_SECONDS"], "5", "Backoff before the first retry; doubles per attempt, with jitter.");
    public static readonly Setting ShutdownGrace = new("shutdownGraceSeconds", "--shutdown-grace", ["SHUTDOWN_GRACE_SECONDS"], "30", "On SIGTERM, how long running jobs may finish before they are handed back.");
    public static readonly Setting MaxRepoSizeMb = new("maxRepoSizeMb", "--max-repo-size-mb", ["MAX_REPO_SIZE_MB"], "500", "Largest repository checkout.");
    public static readonly Setting MaxRepoFiles = new("maxRepoFiles", "--max-repo-files", ["MAX_REPO_FILES"], "100000", "Most files in a checkout.");
    public static readonly Setting MaxOutputBytes = new("maxOutputBytes", "--max-output-bytes", ["MAX_OUTPUT_BYTES"], "1048576", "Agent output kept per attempt; the rest is dropped.");
    public static readonly Setting GitToken = new("gitToken", "--git-token", ["GIT_TOKEN", "GITHUB_TOKEN"], null, "Token for cloning private HTTPS repositories.", Secret: true);
    public static readonly Setting GitTokenHost = new("gitTokenHost", "--git-token-host", ["GIT_TOKEN_HOST"], "github.com", "The one host the git token is offered to (HTTPS only).");
    public static readonly Setting Sandbox = new("sandbox", "--sandbox", ["SANDBOX"], "bwrap", "Agent isolation: bwrap (bubblewrap namespaces, cgroups, seccomp) or none (explicit opt-out, warned on every job).");
    public static readonly Setting SandboxMemoryMb = new("sandboxMemoryMb", "--sandbox-memory-mb", ["SANDBOX_MEMORY_MB"], "2048", "Memory limit of one agent run (cgroup).");
    public static readonly Setting SandboxPids = new("sandboxPids", "--sandbox-pids", ["SANDBOX_PIDS"], "256", "Process/thread limit of one agent run (cgroup).");
    public static readonly Setting SandboxCpus = new("sandboxCpus", "--sandbox-cpus", ["SANDBOX_CPUS"], "2", "CPU limit of one agent run, in cores (cgroup).");
    public static readonly Setting SandboxTmpMb = new("sandboxTmpMb", "--sandbox-tmp-mb", ["SANDBOX_TMP_MB"], "512", "Size of the agent's private /tmp.");
    public static readonly Setting SandboxFileSizeMb = new("sandboxFileSizeMb", "--sandbox-file-size-mb", ["SANDBOX_FILE_SIZE_MB"], "1024", "Largest file an agent may write (RLIMIT_FSIZE).");
    public static readonly Setting SandboxOpenFiles = new("sandboxOpenFiles", "--sandbox-open-files", ["SANDBOX_OPEN_FILES"], "1024", "Open files per agent process (RLIMIT_NOFILE).");
    public static readonly Setting SandboxHomeMb = new("sandboxHomeMb", "--sandbox-home-mb", ["SANDBOX_HOME_MB"], "512", "Size of the agent's home directory (a tmpfs of its own with --workspace-tmpfs).");
    public static readonly Setting WorkspaceTmpfs = new("workspaceTmpfs", "--workspace-tmpfs", ["WORKSPACE_TMPFS"], "auto", "Each attempt's workspace, home and artifacts folder on a tmpfs capped by MAX_REPO_SIZE_MB, SANDBOX_HOME_MB and MAX_ARTIFACT_MB, so a write past a cap fails while the agent runs: auto (on for a root worker), on, off.");
    public static readonly Setting LocalRepoRoots = new("localRepoRoots", "--local-repo-roots", ["LOCAL_REPO_ROOTS"], null, "Directories local repositories may be cloned from, comma-separated (default: anywhere the sandbox user can read, except the worker's own directories).");
    public static readonly Setting SandboxUid = new("sandboxUid", "--sandbox-uid", ["SANDBOX_UID"], "65534", "Host uid (and gid) agents run as when the worker is root.");
    public static readonly Setting LogLevel = new("logLevel", "--log-level", ["LOG_LEVEL", "WORKER_LOG_LEVEL"], "info", "trace, debug, info, warn, error.");
    public static readonly Setting LogFormat = new("logFormat", "--log-format", ["LOG_FORMAT", "WORKER_LOG_FORMAT"], "auto", "json, text, or auto (text on a terminal, JSON otherwise).");
    public static readonly Setting LogOutput = new("logOutput", "--log-output", ["LOG_OUTPUT", "WORKER_LOG_OUTPUT"], "stdout", "Where logs go: stdout, stderr, or a file path (appended).");

    // Egress: what agents with network allowlist or full reach through the worker's egress proxy.
    public static readonly Setting EgressAllowCidrs = new("egressAllowCidrs", "--egress-allow-cidrs", ["EGRESS_ALLOW_CIDRS"], null, "Non-public addresses agents may still reach through the egress proxy (e.g. a private model gateway): IPs, CIDRs or IP:PORT, comma-separated.");
    public static readonly Setting EgressResolve = new("egressResolve", "--egress-resolve", ["EGRESS_RESOLVE"], null, "Names the egress proxy connects to a fixed address instead of looking them up: host:port:address, comma-separated (like curl --resolve).");
    public static readonly Setting EgressJobsMayAddHosts = new("egressJobsMayAddHosts", "--egress-jobs-may-add-hosts", ["EGRESS_JOBS_MAY_ADD_HOSTS"], "false", "A job's allowHosts (or network full) may go beyond its agent's allow list (true/false).");
    public static readonly Setting EgressMaxConnections = new("egressMaxConnections", "--egress-max-connections", ["EGRESS_MAX_CONNECTIONS"], "64", "Egress connections one agent run may have open at once.");
    public static readonly Setting EgressMaxMb = new("egressMaxMb", "--egress-max-mb", ["EGRESS_MAX_MB"], "2048", "Egress traffic (up and down) one agent run may send and receive.");
    public static readonly Setting EgressIdleTimeout = new("egressIdleTimeoutSeconds", "--egress-idle-timeout", ["EGRESS_IDLE_TIMEOUT_SECONDS"], "300", "An egress connection with no traffic for this many seconds is closed.");

    // Model gateway: agents reach their model vendors through the worker, with placeholders for the keys below.
    public static readonly Setting OpenAIApiKey = new("openaiApiKey", "--openai-api-key", ["OPENAI_API_KEY"], null, "OpenAI key; the gateway sends it to api.openai.com for agents with gateway openai, which only get a placeholder.", Secret: true);
    public static readonly Setting AnthropicApiKey = new("anthropicApiKey", "--anthropic-api-key", ["ANTHROPIC_API_KEY"], null, "Anthropic key; the gateway sends it to api.anthropic.com for agents with gateway anthropic, which only get a placeholder.", Secret: true);
    public static readonly Setting ModelPrices = new("modelPrices", "--model-prices", ["MODEL_PRICES"], null, "Prices for the gateway's cost estimates and maxCostUsd budgets, in USD per million tokens, as JSON: {\"gpt-4o\": {\"input\": 2.5, \"output\": 10, \"cachedInput\": 1.25}}; a model not listed matches the longest listed name it starts with followed by '-'.");
    public static readonly Setting GatewayMaxRequestMb = new("gatewayMaxRequestMb", "--gateway-max-request-mb", ["GATEWAY_MAX_REQUEST_MB"], "32", "Largest request body an agent may send through the model gateway (larger ones get 413).");
    public static readonly Setting GatewayMaxResponseMb = new("gatewayMaxResponseMb", "--gateway-max-response-mb", ["GATEWAY_MAX_RESPONSE_MB"], "64", "Largest answer the model gateway passes back; a larger one is cut off.");
    public static readonly Setting GatewayTimeout = new("gatewayTimeoutSeconds", "--gateway-timeout", ["GATEWAY_TIMEOUT_SECONDS"], "600", "How long a vendor may take to start answering before the agent gets 504.");

    // Orchestrator link (`connect`, `serve --orchestrator-addr`) and the tool set; names and defaults of the Go tool worker.
    public static readonly Setting OrchestratorAddr = new("orchestratorAddr", "--orchestrator-addr", ["WORKER_ORCHESTRATOR_ADDR"], "unix:///tmp/agent-worker-grpc.sock", "Orchestrator gRPC address: unix:///PATH or http://HOST:PORT. `serve`/`run` link to it only when set.");
    public static readonly Setting WorkerName = new("name", "--name", ["WORKER_NAME"], null, "Worker name the orchestrator knows this worker by (default worker-<hostname>).");
    public static readonly Setting DialTimeout = new("dialTimeout", "--dial-timeout", ["WORKER_DIAL_TIMEOUT"], "30s", "Timeout for connecting to the orchestrator (e.g. 30s, 1m).");
    public static readonly Setting RpcTimeout = new("rpcTimeout", "--rpc-timeout", ["WORKER_RPC_TIMEOUT"], "10s", "Timeout of each register, heartbeat and unregister call.");
    public static readonly Setting MaxRecvMsgSize = new("maxRecvMsgSize", "--max-recv-msg-size", ["WORKER_MAX_RECV_MSG_SIZE"], "104857600", "Largest gRPC message received, in bytes (worker and orchestrator).");
    public static readonly Setting MaxSendMsgSize = new("maxSendMsgSize", "--max-send-msg-size", ["WORKER_MAX_SEND_MSG_SIZE"], "104857600", "Largest gRPC message sent, in bytes; task output is sent in chunks below it.");
    public static readonly Setting ReconnectInterval = new("reconnectInterval", "--reconnect-interval", ["WORKER_RECONNECT_INTERVAL"], "5s", "Wait between connection attempts.");
    public static readonly Setting ReconnectMaxAttempts = new("reconnectMaxAttempts", "--reconnect-max-attempts", ["WORKER_RECONNECT_MAX_ATTEMPTS"], "0", "Failed connection attempts in a row before exiting non-zero (0 = retry forever).");
    public static readonly Setting HeartbeatInterval = new("heartbeatInterval", "--heartbeat-interval", ["WORKER_HEARTBEAT_INTERVAL"], "30s", "Interval between heartbeats to the orchestrator (not the lease heartbeat, --heartbeat-seconds).");
    public static readonly Setting MaxConcurrentTasks = new("maxConcurrentTasks", "--max-concurrent-tasks", ["WORKER_MAX_CONCURRENT_TASKS"], "4", "Orchestrator tasks run at once.");
    public static readonly Setting CancelGrace = new("cancelGrace", "--cancel-grace", ["WORKER_CANCEL_GRACE"], "5s", "How long a task cancelled without force (or at shutdown) may finish before it is killed.");
    public static readonly Setting Tools = new("tools", "--tools", ["WORKER_TOOLS"], "file_read,file_write,file_edit,grep,find,list,fetch_url,web_search", "Tools this worker offers (comma-separated). Per-tool limits: the `tools:` section of the config file.");
    public static readonly Setting ToolWorkspaces = new("toolWorkspaces", "--tool-workspaces", ["WORKER_TOOL_WORKSPACES"], null, "Directory whose subdirectories are the workspaces tool tasks name (default <data-dir>/workspaces).");
    public static readonly Setting WebAllow = new("webAllow", "--web-allow", ["WORKER_WEB_ALLOW"], null, "Addresses web tools may reach although loopback/private/link-local: IPs, CIDRs or IP:PORT, comma-separated.");
    public static readonly Setting WebSearchUrl = new("webSearchUrl", "--web-search-url", ["WORKER_WEB_SEARCH_URL"], null, "Search API for web_search, with {query} (and optionally {count}), e.g. https://searx.example/search?format=json&q={query}.");

    // Seed integrations: tasks-table intake, S3 artifacts, instance allocator, llm agent.
    public static readonly Setting Intake = new("intake", "--intake", ["AGENT_WORKER_INTAKE"], "http", "Extra job source: http (API and queue only) or postgres-tasks (run the tasks table in POSTGRES_URL; the queue then defaults to sqlite).");
    public static readonly Setting AgentId = new("agentId", "--agent-id", ["AGENT_ID"], null, "Tasks-table mode: whose tasks to run. Also names artifact keys agent<AGENT_ID>/screenshots/<uuid>.<ext>.");
    public static readonly Setting PollInterval = new("pollIntervalSeconds", "--poll-interval", ["POLL_INTERVAL_SECONDS"], "5", "Tasks-table mode: seconds between polls and between heartbeat progress rows.");
    public static readonly Setting RunTaskTimeout = new("runTaskTimeoutSeconds", "--run-task-timeout", ["RUN_TASK_TIMEOUT_SECONDS"], "300", "Tasks-table mode: agent timeout per task in seconds.");
    public static readonly Setting MinioEndpoint = new("minioEndpoint", "--minio-endpoint", ["MINIO_ENDPOINT"], null, "S3-compatible server for artifacts (host:port or URL); unset = artifacts are listed, not stored.");
    public static readonly Setting MinioAccessKey = new("minioAccessKey", "--minio-access-key", ["MINIO_ACCESS_KEY"], null, "Access key for MINIO_ENDPOINT.");
    public static readonly Setting MinioSecretKey = new("minioSecretKey", "--minio-secret-key", ["MINIO_SECRET_KEY"], null, "Secret key for MINIO_ENDPOINT.", Secret: true);
    public static readonly Setting MinioSecure = new("minioSecure", "--minio-secure", ["MINIO_SECURE"], "false", "HTTPS to MINIO_ENDPOINT (true/false/1/0/yes/no).");
    public static readonly Setting MinioBucket = new("minioBucket", "--minio-bucket", ["MINIO_BUCKET"], "screenshots", "Bucket artifacts go to (created when missing).");
    public static readonly Setting AllocatorApiUrl = new("allocatorApiUrl", "--allocator-api-url", ["ALLOCATOR_API_URL"], null, "Instance allocator: POST /borrow before each attempt, POST /return after it; unset = none.");
    public static readonly Setting LlmApiKey = new("llmApiKey", "--llm-api-key", ["OPENROUTER_API_KEY", "LLM_API_KEY"], null, "API key of the llm agent's endpoint; handed to that agent only.", Secret: true);
    public static readonly Setting LlmBaseUrl = new("llmBaseUrl", "--llm-base-url", ["LLM_BASE_URL"], Core.Agents.BuiltIn.LlmReviewer.DefaultBaseUrl, "OpenAI-compatible endpoint of the llm agent (…/chat/completions is appended).");
    public static readonly Setting LlmModel = new("llmModel", "--llm-model", ["LLM_MODEL"], "openai/gpt-4o-mini", "Model of the llm agent unless the job names one (job field `model`).");
    // Integrations: git remotes and apply-mode commits, artifacts, result sinks (webhooks, results table).
    public static readonly Setting GitSshKey = new("gitSshKey", "--git-ssh-key", ["GIT_SSH_KEY_FILE"], null, "Private key file for SSH remotes (clone and push); hidden from agents.");
    public static readonly Setting GitSshKnownHosts = new("gitSshKnownHosts", "--git-ssh-known-hosts", ["GIT_SSH_KNOWN_HOSTS"], null, "known_hosts file for SSH remotes (default: ~/.ssh/known_hosts of the worker's user).");
    public static readonly Setting GitSshStrictHostKeyChecking = new("gitSshStrictHostKeyChecking", "--git-ssh-strict-host-key-checking", ["GIT_SSH_STRICT_HOST_KEY_CHECKING"], "yes", "yes (unknown host keys are refused) or accept-new (trust a host's first key).");
    public static readonly Setting GitAuthorName = new("gitAuthorName", "--git-author-name", ["GIT_AUTHOR_NAME"], "AgentWorker", "Author and committer name of apply-mode commits.");
    public static readonly Setting GitAuthorEmail = new("gitAuthorEmail", "--git-author-email", ["GIT_AUTHOR_EMAIL"], "agent-worker@localhost", "Author and committer email of apply-mode commits.");
    public static readonly Setting MaxArtifactMb = new("maxArtifactMb", "--max-artifact-mb", ["MAX_ARTIFACT_MB"], "100", "Artifacts kept per attempt: the files the agent reported, and those read from its artifacts folder (the diff has MAX_DIFF_MB).");
    public static readonly Setting MaxDiffMb = new("maxDiffMb", "--max-diff-mb", ["MAX_DIFF_MB"], "50", "Size of the diff.patch kept per attempt; a longer diff is kept cut there, with a marker line, and the result says diffTruncated.");
    public static readonly Setting WebhookUrl = new("webhookUrl", "--webhook-url", ["WEBHOOK_URL"], null, "URL(s), comma-separated, that get every job state change as signed JSON.", Secret: true);
    public static readonly Setting WebhookSecret = new("webhookSecret", "--webhook-secret", ["WEBHOOK_SECRET"], null, "Key of the webhooks' HMAC-SHA256 signature (at least 16 characters; required with --webhook-url).", Secret: true);
    public static readonly Setting ResultsTable = new("resultsTable", "--results-table", ["RESULTS_TABLE"], null, "PostgreSQL table that gets a row per finished job, e.g. audit_results (created when missing).");
    public static readonly Setting ResultsPostgresUrl = new("resultsPostgresUrl", "--results-postgres-url", ["RESULTS_POSTGRES_URL"], null, "Database of the results table (default: POSTGRES_URL).", Secret: true);
    public static readonly Setting SinkMaxAttempts = new("sinkMaxAttempts", "--sink-max-attempts", ["SINK_MAX_ATTEMPTS"], "6", "Tries per webhook or results-table delivery.");
    public static readonly Setting SinkRetryBaseDelay = new("sinkRetryBaseDelaySeconds", "--sink-retry-base-delay", ["SINK_RETRY_BASE_DELAY_SECONDS"], "1", "Wait before a delivery's first retry; doubles per retry, with jitter.");
    public static readonly Setting SinkTimeout = new("sinkTimeoutSeconds", "--sink-timeout", ["SINK_TIMEOUT_SECONDS"], "10", "Longest one delivery try may take.");

    // Clone cache: local bare mirrors that repeat clones are made from.
    public static readonly Setting CloneCache = new("cloneCache", "--clone-cache", ["CLONE_CACHE"], "on", "Clone from a local mirror of each repository, fetched before every clone (on), or always from the remote (off).");
    public static readonly Setting CloneCacheDir = new("cloneCacheDir", "--clone-cache-dir", ["CLONE_CACHE_DIR"], null, "Where the clone cache keeps its mirrors (default <data-dir>/clone-cache); several workers may share it.");
    public static readonly Setting CloneCacheMaxMb = new("cloneCacheMaxMb", "--clone-cache-max-mb", ["CLONE_CACHE_MAX_MB"], "5120", "Clone cache size; above it the least recently used mirrors are removed.");
    public static readonly Setting CloneCacheMaxAge = new("cloneCacheMaxAge", "--clone-cache-max-age", ["CLONE_CACHE_MAX_AGE"], "168h", "Mirrors unused for this long are removed (e.g. 168h, 30m).");

    public static readonly IReadOnlyList<Setting> All =
    [
        ConfigFile, DataDir, Backend, RedisUrl, QueueName, PostgresUrl, PostgresSchema, WorkDir, Port, Host, PublicUrl, Workers, ApiKey, RateLimit, MaxQueueDepth, MaxBodyBytes,
        AgentsFile, DefaultAgent, JobTimeout, LeaseSeconds, HeartbeatSeconds, RetryBaseDelay, ShutdownGrace,
        MaxRepoSizeMb, MaxRepoFiles, MaxOutputBytes, GitToken, GitTokenHost, Sandbox, SandboxMemoryMb, SandboxPids, SandboxCpus,
        SandboxTmpMb, SandboxFileSizeMb, SandboxOpenFiles, SandboxHomeMb, WorkspaceTmpfs, LocalRepoRoots, SandboxUid,
        EgressAllowCidrs, EgressResolve, EgressJobsMayAddHosts, EgressMaxConnections, EgressMaxMb, EgressIdleTimeout, LogLevel, LogFormat,
        LogOutput, OrchestratorAddr, WorkerName, DialTimeout, RpcTimeout, MaxRecvMsgSize, MaxSendMsgSize, ReconnectInterval, ReconnectMaxAttempts,
        HeartbeatInterval, MaxConcurrentTasks, CancelGrace, Tools, ToolWorkspaces, WebAllow, WebSearchUrl,
        Intake, AgentId, PollInterval, RunTaskTimeout, MinioEndpoint, MinioAccessKey, MinioSecretKey, MinioSecure, MinioBucket,
        AllocatorApiUrl, LlmApiKey, LlmBaseUrl, LlmModel, OpenAIApiKey, AnthropicApiKey, ModelPrices, GatewayMaxRequestMb, GatewayMaxResponseMb, GatewayTimeout,
        GitSshKey, GitSshKnownHosts, GitSshStrictHostKeyChecking, GitAuthorName, GitAuthorEmail, MaxArtifactMb, MaxDiffMb,
        WebhookUrl, WebhookSecret, ResultsTable, ResultsPostgresUrl, SinkMaxAttempts, SinkRetryBaseDelay, SinkTimeout,
        CloneCache, CloneCacheDir, CloneCacheMaxMb, CloneCacheMaxAge,
    ];
}
