using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Tests.EndToEnd;
using AgentWorker.Testing;
using Microsoft.Playwright;

namespace AgentWorker.Tests.Dashboard;

/// <summary>
/// One real `agent-worker serve` (bearer auth, SQLite, real sandbox) with a local git repository, and Debian's chromium
/// driven by Playwright, shared by the browser tests of a class. Playwright's own browser download is never used.
/// </summary>
public sealed class DashboardServer : IAsyncLifetime
{
    public const string ApiKey = "dashboard-test-key-0123";
    public const string Chromium = "/usr/bin/chromium";
    public const int Workers = 3;

    private readonly TempDirectory _dir = new("aw-dash");
    private readonly TestCertificateAuthority _authority = new();
    private FakeModelVendor? _vendor;
    private WorkerProcess? _worker;
    private IPlaywright? _playwright;

    public TestRepository Repo { get; } = TestRepository.Create(new Dictionary<string, string>
    {
        ["README.md"] = "dashboard test repository\n",
        ["src/app.py"] = "print('hello')\n",
    });

    public string BaseUrl { get; private set; } = "";
    public HttpClient Api { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where the screenshots go: the test output, next to the test assembly.</summary>
    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"{Chromium} is missing: scripts/test.sh installs Debian's chromium package");
        var agents = _dir.Combine("agents.yaml");
        // ticker: prints a line a second, so a follower sees the log grow while the job runs.
        // reporter: findings of every severity in shuffled order (score 100 - 25 - 10 - 4 - 1 = 60), and three artifact paths.
        // sleeper: runs until cancelled.
        // metadata-reader: asks its egress proxy for the cloud metadata address, which the proxy refuses before connecting.
        // model-caller: two requests to its vendor through the model gateway (a priced model and an unpriced one).
        File.WriteAllText(agents, """
            agents:
              - id: ticker
                description: Prints a tick a second for five seconds
                command: ["sh", "-c", "for i in 1 2 3 4 5; do echo \"tick $i\"; sleep 1; done"]
              - id: reporter
                description: Reports one finding of each severity and three artifacts
                command:
                  - sh
                  - -c
                  - |
                    for s in low critical info high medium; do
                      printf '{"type":"finding","severity":"%s","rule":"rule-%s","file":"src/app.py","line":1,"message":"a %s problem"}\n' $s $s $s
                    done
                    echo '{"type":"artifact","path":"report/summary.txt"}'
                    echo '{"type":"artifact","path":"javascript:alert(1)"}'
                    echo '{"type":"artifact","path":"https://artifacts.example/run/report.html"}'
              - id: sleeper
                command: ["sh", "-c", "echo started; exec sleep 300"]
              - id: metadata-reader
                command: ["sh", "-c", "curl -sS --max-time 10 http://169.254.169.254/latest/meta-data/"]
                network: full
              - id: model-caller
                command:
                  - sh
                  - -c
                  - |
                    for model in gpt-4o dash-mystery; do
                      curl -sS --fail-with-body "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" \
                        -H 'Content-Type: application/json' -d "{\"model\":\"$model\",\"messages\":[]}" || exit 1
                    done
                gateway: [openai]
                network: allowlist
            """);
        // The vendor answers 120 input (20 cached) and 30 output tokens a request.
        _vendor = await FakeModelVendor.StartAsync(_authority, ["api.openai.com"]);
        _vendor.Answer = _ => new ModelReply { InputTokens = 120, CachedTokens = 20, OutputTokens = 30 };
        _worker = StartWorker(new Dictionary<string, string>
        {
            ["OPENAI_API_KEY"] = "sk-dashboard-real-key",
            ["EGRESS_RESOLVE"] = _vendor.Pins,
            ["EGRESS_ALLOW_CIDRS"] = _vendor.EndPoint,
            ["SSL_CERT_FILE"] = _authority.WritePem(_dir.Combine("ca.pem")),
            ["MODEL_PRICES"] = """{"gpt-4o": {"input": 2.5, "output": 10, "cachedInput": 1.25}}""",
        }, out var baseUrl);
        BaseUrl = baseUrl;
        Api = new HttpClient { BaseAddress = new Uri(baseUrl) };
        Api.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        await _worker.WaitReadyAsync(Api);

        Directory.CreateDirectory(ScreenshotDirectory);
        // Playwright's 5 s default is short for a first OpenAPI document or a sandboxed job on a busy 2-core CI machine.
        Assertions.SetDefaultExpectTimeout(30_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true });
    }

    /// <summary>
    /// Starts `agent-worker serve` with this fixture's key, agents and data directory, plus <paramref name="environment"/>
    /// (e.g. another backend). Returns at once; the caller waits for /ready.
    /// </summary>
    internal WorkerProcess StartWorker(Dictionary<string, string> environment, out string baseUrl)
    {
        var port = WorkerProcess.FreePort();
        var settings = new Dictionary<string, string>
        {
            ["WORKER_API_KEY"] = ApiKey,
            ["PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["HOST"] = "127.0.0.1",
            ["WORKERS"] = Workers.ToString(CultureInfo.InvariantCulture),
            ["AGENT_WORKER_DATA"] = _dir.Combine($"data-{port}"),
            ["WORK_DIR"] = _dir.Combine("work"),
            ["AGENTS_FILE"] = _dir.Combine("agents.yaml"),
            ["RATE_LIMIT_PER_MINUTE"] = "0",
        };
        foreach (var (name, value) in environment)
            settings[name] = value;
        baseUrl = $"http://127.0.0.1:{port}";
        return WorkerProcess.Start(settings, "serve");
    }

    /// <summary>Queues a job over the API and returns its id.</summary>
    public async Task<string> EnqueueAsync(string agent, string? repoUrl = null, DateTimeOffset? runAt = null)
    {
        var body = new JsonObject { ["agent"] = agent, ["repo"] = new JsonObject { ["url"] = repoUrl ?? Repo.Path } };
        if (runAt is { } at)
            body["runAt"] = at.ToString("O", CultureInfo.InvariantCulture);
        var response = await Api.PostAsJsonAsync("/v1/jobs", body);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    public async Task<JsonElement> JobAsync(string id) => await Api.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");

    public Task<JsonElement> WaitForStateAsync(string id, string state) =>
        Eventually.UntilAsync(() => JobAsync(id), job => job.GetProperty("state").GetString() == state, TimeSpan.FromSeconds(60), $"job {id} {state}");

    /// <summary>The worker's output, for failure messages.</summary>
    public string Output => _worker?.Output ?? "";

    public async Task DisposeAsync()
    {
        if (Browser is not null)
            await Browser.DisposeAsync();
        _playwright?.Dispose();
        Api?.Dispose();
        if (_worker is not null)
            await _worker.DisposeAsync();
        if (_vendor is not null)
            await _vendor.DisposeAsync();
        _authority.Dispose();
        Repo.Dispose();
        _dir.Dispose();
    }
}
