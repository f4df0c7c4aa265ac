using System.Collections.Concurrent;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace AgentWorker.Tests.Dashboard;

/// <summary>A fresh browser context (own sessionStorage) on the dashboard, recording console errors and every request.</summary>
internal sealed class BrowserSession : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly ConcurrentQueue<string> _errors = new();

    private BrowserSession(IBrowserContext context, IPage page, DashboardServer server)
    {
        _context = context;
        Page = page;
        Server = server;
        page.Console += (_, message) => { if (message.Type == "error") _errors.Enqueue($"console: {message.Text} ({message.Location})"); };
        page.PageError += (_, error) => _errors.Enqueue($"page error: {error}");
        page.Request += (_, request) => Requests.Enqueue(request);
    }

    public IPage Page { get; }
    public DashboardServer Server { get; }
    public ConcurrentQueue<IRequest> Requests { get; } = new();
    public IReadOnlyCollection<string> ConsoleErrors => _errors;

    public static async Task<BrowserSession> OpenAsync(DashboardServer server, int width = 1280, int height = 900, string? baseUrl = null)
    {
        var context = await server.Browser.NewContextAsync(new() { ViewportSize = new() { Width = width, Height = height }, BaseURL = baseUrl ?? server.BaseUrl });
        return new BrowserSession(context, await context.NewPageAsync(), server);
    }

    /// <summary>Opens the dashboard and signs in through the form with <paramref name="token"/>.</summary>
    public async Task SignInAsync(string token = DashboardServer.ApiKey)
    {
        await Page.GotoAsync("/");
        await Page.GetByLabel("API token").FillAsync(token);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }

    public async Task ScreenshotAsync(string name, bool fullPage = true) =>
        await Page.ScreenshotAsync(new() { Path = Path.Combine(DashboardServer.ScreenshotDirectory, $"{name}.png"), FullPage = fullPage });

    public static async Task ScreenshotAsync(ILocator part, string name) =>
        await part.ScreenshotAsync(new() { Path = Path.Combine(DashboardServer.ScreenshotDirectory, $"{name}.png") });

    /// <summary>axe-core (the engine behind Lighthouse's accessibility audit) on the page as it is: labels, contrast, roles, names.</summary>
    public async Task AssertAccessibleAsync(string view)
    {
        var result = await Page.RunAxe(new AxeRunOptions
        {
            RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
        });
        var violations = result.Violations.Select(v => $"{v.Id}: {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target?.ToString()))}").ToList();
        Assert.True(violations.Count == 0, $"{view}: accessibility violations:\n{string.Join('\n', violations)}");
    }

    public void AssertNoConsoleErrors() =>
        Assert.True(_errors.IsEmpty, $"console errors:\n{string.Join('\n', _errors)}");

    /// <summary>True when no request the page made carried <paramref name="secret"/> in its URL.</summary>
    public bool NoUrlContains(string secret) => Requests.All(r => !r.Url.Contains(secret, StringComparison.Ordinal));

    public async ValueTask DisposeAsync() => await _context.DisposeAsync();
}
