using System.Diagnostics;

namespace AgentWorker.Cli;

/// <summary>A small repository with problems the built-in agents should find: drifted copies, conflicting pins, a committed key, floating dependencies.</summary>
internal static class DemoRepository
{
    private static readonly Dictionary<string, string> Files = new()
    {
        ["README.md"] = "# shop\n\nA tiny demo service.\n",
        ["services/api/settings.py"] = Lines("import os", "", "DATABASE_HOST = os.environ.get('DB_HOST', 'localhost')", "MAX_RETRIES = 3", "TIMEOUT_SECONDS = 30", "", "def database_url():", "    host = DATABASE_HOST", "    return f'postgresql://{host}/shop'", ""),
        ["services/worker/settings.py"] = Lines("import os", "", "DATABASE_HOST = os.environ.get('DB_HOST', 'localhost')", "MAX_RETRIES = 5", "TIMEOUT_SECONDS = 30", "", "def database_url():", "    host = DATABASE_HOST", "    return f'postgresql://{host}/shop'", ""),
        ["services/api/billing.py"] = Lines(Block("invoice")),
        ["services/worker/billing_copy.py"] = Lines(Block("invoice")),
        ["services/api/requirements.txt"] = Lines("requests==2.31.0", "flask==3.0.0", "pyyaml"),
        ["services/worker/requirements.txt"] = Lines("requests==2.28.1", "celery==5.3.4"),
        ["web/package.json"] = Lines("{", "  \"name\": \"shop-web\",", "  \"dependencies\": {", "    \"react\": \"18.2.0\",", "    \"lodash\": \"*\"", "  }", "}"),
        ["admin/package.json"] = Lines("{", "  \"name\": \"shop-admin\",", "  \"dependencies\": {", "    \"react\": \"17.0.2\"", "  }", "}"),
        ["deploy/aws.env"] = Lines("AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIA" + "Q3EGRZ7WNPLX4TMD"),
        ["services/api/config.py"] = Lines("SMTP_USER = 'shop'", "smtp_password = \"" + "tR9#vK2$mQ8@xL5!pW3z" + "\""),
        ["Dockerfile"] = Lines("FROM python:latest", "RUN curl -fsSL https://get.example.invalid/install.sh | sh", "COPY . /app"),
    };

    public static async Task CreateAsync(string path, CancellationToken cancellationToken)
    {
        foreach (var (name, content) in Files)
        {
            var file = Path.Combine(path, name);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            await File.WriteAllTextAsync(file, content, cancellationToken);
        }
        await GitAsync(path, cancellationToken, "init", "--quiet", "--initial-branch", "main");
        await GitAsync(path, cancellationToken, "add", "--all");
        await GitAsync(path, cancellationToken, "-c", "user.name=AgentWorker demo", "-c", "user.email=demo@agent-worker.invalid", "commit", "--quiet", "-m", "Initial commit");
    }

    private static string Lines(params string[] lines) => string.Join('\n', lines) + "\n";

    private static string[] Block(string name) =>
    [
        $"def total_{name}(items, tax_rate):",
        "    subtotal = 0",
        "    for item in items:",
        "        if item.quantity <= 0:",
        "            continue",
        "        subtotal += item.price * item.quantity",
        "    discount = subtotal * 0.05 if subtotal > 100 else 0",
        "    taxed = (subtotal - discount) * (1 + tax_rate)",
        "    return round(taxed, 2)",
    ];

    private static async Task GitAsync(string directory, CancellationToken cancellationToken, params string[] args)
    {
        var start = new ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var git = Process.Start(start) ?? throw new CliException("cannot start git");
        var stderr = git.StandardError.ReadToEndAsync(cancellationToken);
        await git.StandardOutput.ReadToEndAsync(cancellationToken);
        await git.WaitForExitAsync(cancellationToken);
        if (git.ExitCode != 0)
            throw new CliException($"git {args[0]} failed while creating the demo repository: {(await stderr).Trim()}");
    }
}
