using System.Net.Http.Json;
using System.Text.Json;
using AgentWorker.Testing;
using AgentWorker.Tests.EndToEnd;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace AgentWorker.Tests.Dashboard;

/// <summary>
/// The dashboard in a real browser (Debian's chromium) against a real `serve` process: sign-in, the job form by keyboard,
/// live logs, findings, cancel and retry, filters and paging, the overview, narrow screens, page weight, the API reference.
/// Every view is checked with axe-core and for console errors, and a screenshot of it is saved under TestResults/screenshots.
/// </summary>
// Chromium and a worker running jobs take a good part of a 2-core machine: these run alone, like the other heavy scenarios.
[Collection(HeavyScenarios.Name)]
public sealed class DashboardBrowserTests(DashboardServer server, ITestOutputHelper output) : IClassFixture<DashboardServer>
{
    private const float Deadline = 60_000;
    private static readonly string[] SeverityOrder = ["critical", "high", "medium", "low", "info"];

    private static ILocatorAssertions Expect(ILocator locator) => Assertions.Expect(locator);

    private static async Task<string[]> SeveritiesAsync(IPage page) =>
        [.. (await page.Locator("#findings tbody td[data-label=Severity]").AllTextContentsAsync()).Select(s => s.Trim())];

    [Fact]
    public async Task SignIn_WrongToken_IsRejectedAndNothingIsKept()
    {
        await using var session = await BrowserSession.OpenAsync(server);
        const string wrong = "not-the-key-987654";

        await session.SignInAsync(wrong);

        await Expect(session.Page.Locator("#login-error")).ToContainTextAsync("rejected (401)");
        await Expect(session.Page.GetByLabel("API token")).ToHaveAttributeAsync("aria-invalid", "true");
        Assert.Null(await session.Page.EvaluateAsync<string?>("sessionStorage.getItem('agentWorker.token')"));
        await Expect(session.Page.Locator("#nav")).ToBeHiddenAsync();
        Assert.True(session.NoUrlContains(wrong), "the token appeared in a request URL");
        await session.ScreenshotAsync("login-rejected");
        await session.AssertAccessibleAsync("sign-in");
        // The one console error is the browser's own line about the refused request.
        Assert.All(session.ConsoleErrors, e => Assert.Contains("status of 401", e, StringComparison.Ordinal));
        Assert.Single(session.ConsoleErrors);
    }

    [Fact]
    public async Task NewJobForm_UsedByKeyboard_JobSucceedsWhileItsLogStreamsIn()
    {
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Overview" })).ToBeVisibleAsync();
        Assert.Equal(DashboardServer.ApiKey, await page.EvaluateAsync<string>("sessionStorage.getItem('agentWorker.token')"));

        await page.GetByRole(AriaRole.Link, new() { Name = "New job" }).FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#f-agent")).ToBeVisibleAsync();
        await session.AssertAccessibleAsync("new job form");
        // Tab order follows the form from the heading down; every field is reached and filled with the keyboard only.
        var order = new List<string>();
        async Task TabAsync()
        {
            await page.Keyboard.PressAsync("Tab");
            order.Add(await page.EvaluateAsync<string>("document.activeElement.id || document.activeElement.textContent"));
        }
        await TabAsync();
        await page.Keyboard.TypeAsync("ticker");
        await TabAsync();
        await page.Keyboard.TypeAsync(server.Repo.Path);
        await TabAsync();
        await TabAsync();
        await page.Keyboard.TypeAsync("count to five");
        await TabAsync();
        await TabAsync();
        await TabAsync();
        await TabAsync();
        Assert.Equal(["f-agent", "f-repo", "f-branch", "f-prompt", "f-mode-dry_run", "f-network", "f-mcp", "Queue job"], order);
        Assert.Equal("ticker", await page.InputValueAsync("#f-agent"));
        await session.ScreenshotAsync("new-job-form");
        await page.EvaluateAsync("window.notReloaded = true");
        await page.Keyboard.PressAsync("Enter");

        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/jobs/[^/?]+$"));
        var id = Uri.UnescapeDataString(page.Url[(page.Url.LastIndexOf('/') + 1)..]);
        var log = page.Locator("#log");
        await Expect(log).ToContainTextAsync("tick 1", new() { Timeout = Deadline });
        // Seen while the job still runs: the log is arriving live, not loaded at the end.
        var seen = await page.EvaluateAsync<string[]>("[document.querySelector('.title-row .badge').textContent, document.getElementById('log').textContent]");
        Assert.Equal("running", seen[0]);
        Assert.DoesNotContain("tick 5", seen[1], StringComparison.Ordinal);
        await Expect(page.Locator("#follow-state")).ToContainTextAsync("Following live");
        await session.ScreenshotAsync("job-running");

        await Expect(page.Locator(".title-row .badge")).ToHaveTextAsync("succeeded", new() { Timeout = Deadline });
        await Expect(log).ToContainTextAsync("tick 5");
        await Expect(page.Locator("#follow-state")).ToContainTextAsync("Job ended");
        await Expect(page.Locator(".timeline")).ToContainTextAsync("succeeded");
        Assert.True(await page.EvaluateAsync<bool>("window.notReloaded === true"), "the page reloaded instead of streaming");
        Assert.Equal("succeeded", (await server.JobAsync(id)).GetProperty("state").GetString());
        Assert.Equal("count to five", (await server.JobAsync(id)).GetProperty("prompt").GetString());
        Assert.True(session.NoUrlContains(DashboardServer.ApiKey), "the token appeared in a request URL");
        Assert.DoesNotContain(DashboardServer.ApiKey, page.Url, StringComparison.Ordinal);
        await session.ScreenshotAsync("job-succeeded");
        await session.AssertAccessibleAsync("job detail");
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task NewJobForm_RefusedField_IsNamedAtTheFieldAndNothingIsQueued()
    {
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "New job" }).ClickAsync();
        var before = (await server.Api.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=1")).GetProperty("total").GetInt64();

        await page.GetByLabel("Repository URL").FillAsync("https://user:secret@git.example/app.git");
        await page.GetByRole(AriaRole.Button, new() { Name = "Queue job" }).ClickAsync();

        await Expect(page.Locator("#f-repo")).ToHaveAttributeAsync("aria-invalid", "true");
        await Expect(page.Locator("#f-repo-error")).Not.ToBeEmptyAsync();
        await Expect(page.Locator(".errors")).ToContainTextAsync("repo.url");
        await Expect(page.Locator("#f-repo")).ToBeFocusedAsync();
        Assert.Equal(before, (await server.Api.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=1")).GetProperty("total").GetInt64());
        await session.ScreenshotAsync("new-job-refused");
        await session.AssertAccessibleAsync("new job form with errors");
        Assert.All(session.ConsoleErrors, e => Assert.Contains("status of 400", e, StringComparison.Ordinal));
    }

    [Fact]
    public async Task JobDetail_Findings_SortBySeverityBothWaysAndShowTheScore()
    {
        var id = await server.EnqueueAsync("reporter");
        var job = await server.WaitForStateAsync(id, "succeeded");
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();

        await page.GotoAsync($"/#/jobs/{id}");

        await Expect(page.Locator("#findings tbody tr")).ToHaveCountAsync(5);
        Assert.Equal(SeverityOrder, await SeveritiesAsync(page));
        await Expect(page.Locator("#findings th[aria-sort=ascending]")).ToContainTextAsync("Severity");
        await page.Locator("#findings").GetByRole(AriaRole.Button, new() { Name = "Severity" }).ClickAsync();
        await Expect(page.Locator("#findings th[aria-sort=descending]")).ToContainTextAsync("Severity");
        Assert.Equal(SeverityOrder.Reverse(), await SeveritiesAsync(page));
        Assert.Equal(60, job.GetProperty("result").GetProperty("healthScore").GetInt32());
        await Expect(page.Locator("#health-score")).ToHaveTextAsync("60");
        await Expect(page.GetByText("Wall time")).ToBeVisibleAsync();
        // Artifacts: a web URL becomes a link; a workspace path is listed as text; a javascript: "path" is never a link.
        var links = page.Locator("section[aria-labelledby=links-title]");
        await Expect(links).ToContainTextAsync("report/summary.txt");
        await Expect(links).ToContainTextAsync("javascript:alert(1)");
        await Expect(links.Locator("a")).ToHaveCountAsync(1);
        await Expect(links.Locator("a")).ToHaveAttributeAsync("href", "https://artifacts.example/run/report.html");
        await session.ScreenshotAsync("job-findings");
        await session.AssertAccessibleAsync("job findings");
        session.AssertNoConsoleErrors();
    }

    /// <summary>Issue 16: an egress refusal is a line of the job's log and a row of the hosts the agent asked for.</summary>
    [Fact]
    public async Task JobDetail_EgressRefusal_IsInTheLogAndTheHostsTable()
    {
        var id = await server.EnqueueAsync("metadata-reader");
        await server.WaitForStateAsync(id, "succeeded");
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();

        await page.GotoAsync($"/#/jobs/{id}");

        await Expect(page.Locator("#egress tbody tr")).ToHaveCountAsync(1);
        await Expect(page.Locator("#egress td[data-label=Host]")).ToHaveTextAsync("169.254.169.254:80");
        await Expect(page.Locator("#egress td[data-label=Connections]")).ToHaveTextAsync("0");
        await Expect(page.Locator("#egress td[data-label=Refused]")).ToHaveTextAsync("1");
        await Expect(page.Locator("#log")).ToContainTextAsync("REFUSED 169.254.169.254:80 http: 169.254.169.254 is a link-local address");
        // The agent's own output carries the proxy's answer.
        await Expect(page.Locator("#log")).ToContainTextAsync("agent-worker egress: refused 169.254.169.254:80");
        await session.ScreenshotAsync("job-egress");
        await session.AssertAccessibleAsync("job egress");
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task JobDetail_ModelUsage_IsInTheLogAndTheModelsTable()
    {
        var id = await server.EnqueueAsync("model-caller");
        await server.WaitForStateAsync(id, "succeeded");
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();

        await page.GotoAsync($"/#/jobs/{id}");

        await Expect(page.Locator("#models tbody tr")).ToHaveCountAsync(2);
        var priced = page.Locator("#models tbody tr", new() { HasText = "gpt-4o" });
        await Expect(priced.Locator("td[data-label=Requests]")).ToHaveTextAsync("1");
        await Expect(priced.Locator("td[data-label=Input]")).ToHaveTextAsync("120");
        await Expect(priced.Locator("td[data-label=Output]")).ToHaveTextAsync("30");
        await Expect(priced.Locator("td[data-label=Cached]")).ToHaveTextAsync("20");
        // (120 - 20) × 2.5 + 20 × 1.25 + 30 × 10 = 575 dollars per million tokens.
        await Expect(priced.Locator("td[data-label=Cost]")).ToHaveTextAsync("$0.000575");
        var unpriced = page.Locator("#models tbody tr", new() { HasText = "dash-mystery" });
        await Expect(unpriced.Locator("td[data-label=Cost]")).ToHaveTextAsync("cost unknown");
        await Expect(page.Locator("#log")).ToContainTextAsync("openai gpt-4o 200: 120 in / 30 out (20 cached), $0.000575");
        await session.ScreenshotAsync("job-models");
        await session.AssertAccessibleAsync("job models");
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task CancelButton_RunningJob_IsKilledThenRetryQueuesItAgain()
    {
        var id = await server.EnqueueAsync("sleeper");
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();
        await page.GotoAsync($"/#/jobs/{id}");
        await Expect(page.Locator("#log")).ToContainTextAsync("started", new() { Timeout = Deadline });

        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel job" }).ClickAsync();

        await Expect(page.Locator(".title-row .badge")).ToHaveTextAsync("cancelled", new() { Timeout = Deadline });
        await Expect(page.Locator("#status")).ToContainTextAsync("Cancel requested");
        Assert.Equal("cancelled", (await server.JobAsync(id)).GetProperty("state").GetString());
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Cancel job" })).ToHaveCountAsync(0);
        await session.ScreenshotAsync("job-cancelled");
        await session.AssertAccessibleAsync("cancelled job");

        await page.GetByRole(AriaRole.Button, new() { Name = "Retry job" }).ClickAsync();

        await Expect(page.Locator("#status")).ToContainTextAsync("queued again");
        await Expect(page.Locator(".title-row .badge")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("queued|running"));
        var state = (await server.JobAsync(id)).GetProperty("state").GetString();
        Assert.Contains(state, new[] { "queued", "running" });
        // Stop it again so it does not hold a worker slot for the other tests.
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel job" }).ClickAsync();
        await Expect(page.Locator(".title-row .badge")).ToHaveTextAsync("cancelled", new() { Timeout = Deadline });
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task JobsTable_FiltersByRepoStateAndAgent_AndPagesNewestFirst()
    {
        // Jobs due next year stay queued: enough for two pages without running anything.
        var repo = $"/srv/filter-{Guid.NewGuid():N}";
        var ids = new List<string>();
        for (var n = 0; n < 27; n++)
            ids.Add(await server.EnqueueAsync("sleeper", $"{repo}/app", DateTimeOffset.UtcNow.AddYears(1)));
        ids.Reverse();
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;
        await session.SignInAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Jobs", Exact = true }).ClickAsync();

        await page.GetByLabel("Repository contains").FillAsync(repo);
        await page.GetByLabel("State").SelectOptionAsync("queued");
        await page.GetByLabel("Agent").SelectOptionAsync("sleeper");
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply filters" }).ClickAsync();

        await Expect(page.Locator("#page-info")).ToHaveTextAsync("1–25 of 27, newest first");
        Assert.Equal(ids.Take(25), await page.Locator("tbody td[data-label=Job]").AllTextContentsAsync());
        await session.ScreenshotAsync("jobs");
        await session.AssertAccessibleAsync("jobs table");
        await page.GetByRole(AriaRole.Link, new() { Name = "Next" }).ClickAsync();
        await Expect(page.Locator("#page-info")).ToHaveTextAsync("26–27 of 27, newest first");
        Assert.Equal(ids.Skip(25), await page.Locator("tbody td[data-label=Job]").AllTextContentsAsync());
        await page.GetByLabel("State").SelectOptionAsync("running");
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply filters" }).ClickAsync();
        await Expect(page.Locator("#page-info")).ToHaveTextAsync("0–0 of 0, newest first");

        foreach (var id in ids)
            await server.Api.PostAsync($"/v1/jobs/{id}/cancel", null);
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task Overview_ShowsTheCountsTheApiReports_ChartsAndBackend()
    {
        var id = await server.EnqueueAsync("reporter");
        await server.WaitForStateAsync(id, "succeeded");
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;

        await session.SignInAsync();

        await Expect(page.Locator("#backend")).ToContainTextAsync("sqlite");
        await Expect(page.Locator("#backend .badge")).ToHaveTextAsync("up");
        var health = await server.Api.GetFromJsonAsync<JsonElement>("/health");
        await Expect(page.Locator(".card", new() { HasText = "Worker slots" }).Locator(".value")).ToHaveTextAsync(DashboardServer.Workers.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Expect(page.Locator(".card", new() { HasText = "Succeeded" }).Locator(".value")).ToHaveTextAsync(health.GetProperty("succeeded").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Expect(page.Locator(".chart svg[role=img]")).ToHaveCountAsync(2);
        await Expect(page.Locator(".chart polyline.s-succeeded")).ToHaveCountAsync(1);
        await Expect(page.Locator("#recent-title")).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = id })).ToBeVisibleAsync();
        await session.ScreenshotAsync("overview");
        await session.AssertAccessibleAsync("overview");
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task Overview_RedisStopsAndComesBack_BackendCardFollowsIt()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await using var worker = server.StartWorker(new() { ["REDIS_URL"] = redis.Url, ["QUEUE_NAME"] = "dashboard-outage" }, out var baseUrl);
        using (var client = new HttpClient { BaseAddress = new Uri(baseUrl) })
            await worker.WaitReadyAsync(client);
        await using var session = await BrowserSession.OpenAsync(server, baseUrl: baseUrl);
        var page = session.Page;
        await session.SignInAsync();
        var backend = page.Locator("#backend");
        await Expect(backend).ToContainTextAsync("redis");
        await Expect(backend.Locator(".badge")).ToHaveTextAsync("up");

        await redis.StopAsync();

        await Expect(backend.Locator(".badge")).ToHaveTextAsync("down");
        await Expect(backend).ToContainTextAsync("down since");
        await Expect(page.Locator("#outage")).ToContainTextAsync("The redis backend does not answer");
        await Expect(page.Locator("section[aria-labelledby=recent-title] .field-error")).ToContainTextAsync("while the backend is down");
        await Expect(page.Locator(".chart svg[role=img]")).ToHaveCountAsync(2);
        await session.ScreenshotAsync("overview-backend-down");
        await redis.StartAgainAsync();
        await Expect(backend.Locator(".badge")).ToHaveTextAsync("up");
        await Expect(backend).ToContainTextAsync("1 outage since start");
        await Expect(page.Locator("#outage")).ToBeHiddenAsync();
        // The browser's own lines about the 503s it was answered while Redis was gone are the only console errors.
        Assert.All(session.ConsoleErrors, e => Assert.Contains("status of 503", e, StringComparison.Ordinal));
    }

    [Fact]
    public async Task NarrowScreen_EveryViewFitsWithoutSidewaysScrolling()
    {
        var id = await server.EnqueueAsync("reporter");
        await server.WaitForStateAsync(id, "succeeded");
        await using var session = await BrowserSession.OpenAsync(server, width: 375, height: 800);
        var page = session.Page;
        await session.SignInAsync();
        var views = new (string Name, string Url, string Ready)[]
        {
            ("overview", "/#/", "#backend"),
            ("jobs", "/#/jobs", "#page-info"),
            ("job", $"/#/jobs/{id}", "#findings"),
            ("new-job", "/#/new", "#f-agent"),
            ("api-reference", "/api-reference", "#toc-title"),
        };

        foreach (var (name, url, ready) in views)
        {
            await page.GotoAsync(url);
            await Expect(page.Locator(ready)).ToBeVisibleAsync();
            var widths = await page.EvaluateAsync<int[]>("[document.documentElement.scrollWidth, window.innerWidth]");
            Assert.True(widths[0] <= widths[1], $"{name}: page is {widths[0]}px wide on a {widths[1]}px screen");
            await session.ScreenshotAsync($"narrow-{name}", fullPage: name != "api-reference");
        }
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task PageLoad_SignInToOverview_TransfersUnder300KB()
    {
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;

        await session.SignInAsync();
        await Expect(page.Locator("#backend")).ToBeVisibleAsync();
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);

        long total = 0;
        foreach (var request in session.Requests)
        {
            var sizes = await request.SizesAsync();
            total += sizes.ResponseBodySize + sizes.ResponseHeadersSize + sizes.RequestHeadersSize + sizes.RequestBodySize;
        }
        output.WriteLine($"{session.Requests.Count} requests, {total} bytes transferred");
        Assert.Contains(session.Requests, r => r.Url.EndsWith("/assets/app.js", StringComparison.Ordinal));
        Assert.InRange(total, 1, 300 * 1024);
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task ApiReference_ListsEveryOperationWithTheThreeJobShapes()
    {
        var document = await server.Api.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var operations = document.GetProperty("paths").EnumerateObject().Sum(p => p.Value.EnumerateObject().Count());
        await using var session = await BrowserSession.OpenAsync(server);
        var page = session.Page;

        await page.GotoAsync("/api-reference");

        await Expect(page.Locator(".toc li")).ToHaveCountAsync(operations);
        var intake = page.Locator("#op-post--v1-jobs");
        await Expect(intake).ToContainTextAsync("needs the bearer token");
        foreach (var shape in new[] { "Native shape", "Seed /queue shape (Bun/Redis worker)", "Seed reliable-queue shape (runs DEFAULT_AGENT)" })
            await Expect(intake.GetByText(shape, new() { Exact = true }).First).ToBeVisibleAsync();
        await Expect(page.Locator("#schema-JobView")).ToContainTextAsync("attemptHistory");
        await session.ScreenshotAsync("api-reference", fullPage: false);
        await BrowserSession.ScreenshotAsync(intake, "api-reference-intake");
        await session.AssertAccessibleAsync("API reference");
        session.AssertNoConsoleErrors();
    }
}
