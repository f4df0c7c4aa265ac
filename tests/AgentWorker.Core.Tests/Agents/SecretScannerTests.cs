using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class SecretScannerTests : IDisposable
{
    private static readonly string AwsKeyId = FakeSecret.Of("AK" + "IA", 16, FakeSecret.UpperAlphanumeric);
    private static readonly string AwsSecret = FakeSecret.Of("", 40, FakeSecret.Base64);
    private static readonly string GitHubToken = FakeSecret.Of("gh" + "p_", 36);
    private static readonly string SlackToken = FakeSecret.Of("xo" + "xb-", 40);
    private static readonly string StripeKey = FakeSecret.Of("sk" + "_live_", 24);
    private static readonly string GoogleKey = FakeSecret.Of("AI" + "za", 35);
    private static readonly string Jwt = "ey" + "J" + FakeSecret.Of("", 20) + ".ey" + "J" + FakeSecret.Of("p", 30) + "." + FakeSecret.Of("s", 43);
    private static readonly string DbPassword = "Xk9#mQ2" + "vL7@pR4!";
    private static readonly string UrlPassword = "N7x!Qz4" + "Rt9Lm";
    private static readonly string SqlPassword = "Vq8#Lm2" + "!Zx7p";
    private static readonly string YamlApiKey = FakeSecret.Of("", 32, "0123456789abcdef");
    private static readonly string KeyBody = FakeSecret.Of("MII", 61, FakeSecret.Base64);

    private static readonly string[] PlantedSecrets =
        [AwsKeyId, AwsSecret, GitHubToken, SlackToken, StripeKey, GoogleKey, Jwt, DbPassword, UrlPassword, SqlPassword, YamlApiKey, KeyBody];

    private readonly TempRepository repository = new();

    public void Dispose() => repository.Dispose();

    [Fact]
    public void Run_PlantedCredentials_ReportsEachWithRuleLineAndSeverity()
    {
        PlantAll();

        var transcript = AgentTranscript.Run(new SecretScanner(), repository);

        Assert.Equal(
        [
            ("env-file", ".env", 2, "medium"),
            ("generic-secret", "app/settings.py", 3, "medium"),
            ("connection-string", "appsettings.json", 2, "high"),
            ("generic-secret", "config/app.yml", 2, "medium"),
            ("aws-access-key", "config/aws.py", 2, "critical"),
            ("aws-secret-key", "config/aws.py", 3, "critical"),
            ("private-key", "deploy/id_rsa", 1, "critical"),
            ("connection-string", "docker-compose.yml", 4, "high"),
            ("stripe-key", "src/billing.rb", 1, "high"),
            ("github-token", "src/github.ts", 2, "high"),
            ("slack-token", "src/slack.js", 1, "high"),
            ("jwt", "tests/fixture.json", 1, "high"),
            ("google-api-key", "web/maps.html", 1, "critical"),
        ], transcript.Keys);
        Assert.Equal("secret_scanner: 13 findings (4 critical, 6 high, 3 medium) in 14 files", transcript.Summary);
    }

    [Fact]
    public void Run_PlantedCredentials_NeverPrintsASecretValue()
    {
        PlantAll();

        var transcript = AgentTranscript.Run(new SecretScanner(), repository);

        Assert.NotEmpty(transcript.Findings);
        foreach (var secret in PlantedSecrets)
        {
            Assert.DoesNotContain(secret, transcript.Raw, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, transcript.Decoded, StringComparison.Ordinal);
        }
        Assert.DoesNotContain(DbPassword[..4], transcript.Decoded, StringComparison.Ordinal);
        var github = Assert.Single(transcript.Findings, f => f.Rule == "github-token");
        Assert.Equal($"GitHub token {GitHubToken[..4]}… (40 chars) is committed; revoke it and load it from the environment or a secret store", github.Message);
        var env = Assert.Single(transcript.Findings, f => f.Rule == "env-file");
        Assert.Contains("(NODE_ENV)", env.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_PlaceholdersAndNonSecrets_ReportsNothing()
    {
        repository
            .Write("docs/aws.md", $"Use a key like {"AK" + "IA"}IOSFODNN7EXAMPLE in examples.\n")
            .Write("app/config.py", """
                import os
                password = "changeme"
                token = os.environ["GITHUB_TOKEN"]
                secret = "${SECRET}"
                password = "Password"
                token_type = "bearer"
                PASSWORD_PROMPT = "Enter your password"
                tokenizer = "bert-base-uncased-x9"
                api_token = "GITHUB_TOKEN"
                db_password = "db-credentials"
                paginator = {"output_token": "nextPageToken"}
                def load(private_key: "_DSAPrivateKey") -> None: ...
                sequence_token = "49542672486831074009"
                dsn = f"postgres://app:{db_password}@db.internal/app"
                token = "{config.Token}"
                """)
            .Write("test/init.bats", "if test \"\\$PWD\" = \"\\$_VENV_PWD\"; then :; fi\n")
            .Write("config/app.yml", "api_key: <your-api-key>\npassword: ${DB_PASSWORD}\n")
            .Write("docs/keys.md", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n")
            .Write("docs/urls.md", "postgres://user:password@localhost/db and postgres://postgres:postgres@localhost/db\n")
            .Write("src/slack.js", $"const token = '{"xo" + "xb"}-your-token-here';\nconst stripe = '{FakeSecret.Of("sk" + "_test_", 24)}';\n")
            .Write("appsettings.json", "{ \"Db\": \"Server=db;Password=${DB_PASSWORD};\" }\n")
            .Write(".env.example", "API_KEY=abc123\nDB_HOST=localhost\n")
            .Write(".env", "# values come from the deployment\nAPI_KEY=\nDB_PASSWORD=changeme\n");

        var transcript = AgentTranscript.Run(new SecretScanner(), repository);

        Assert.Empty(transcript.Findings);
        Assert.Equal("secret_scanner: 0 findings in 10 files", transcript.Summary);
    }

    [Fact]
    public void Run_CredentialsInSkippedLocations_AreNotReported()
    {
        using var outside = new TempRepository();
        outside.Write("leak.txt", $"token = \"{GitHubToken}\"\n");
        var line = $"token = \"{GitHubToken}\"\n";
        repository
            .Write(".git/config", line)
            .Write("node_modules/pkg/index.js", line)
            .Write("vendor/lib.go", line)
            .WriteBytes("assets/blob.bin", [0, .. System.Text.Encoding.UTF8.GetBytes(line)])
            .Write("data/huge.txt", line + new string('x', RepositoryFiles.DefaultMaxFileBytes))
            .Symlink("linked.txt", outside.Full("leak.txt"))
            .Write("src/clean.txt", "nothing to see\n");

        var transcript = AgentTranscript.Run(new SecretScanner(), repository);

        Assert.Empty(transcript.Findings);
        Assert.DoesNotContain(GitHubToken, transcript.Decoded, StringComparison.Ordinal);
        Assert.Contains("skipped symlink linked.txt", transcript.Logs);
        Assert.Contains("skipped data/huge.txt: larger than 1024 KiB", transcript.Logs);
        Assert.Equal("secret_scanner: 0 findings in 1 file", transcript.Summary);
    }

    [Fact]
    public void Run_PrivateKeyInJsonString_IsReported()
    {
        repository.Write("service-account.json",
            $"{{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{KeyBody}\\n-----END PRIVATE KEY-----\\n\"\n}}\n");

        var transcript = AgentTranscript.Run(new SecretScanner(), repository);

        Assert.Equal([("private-key", "service-account.json", 3, "critical")], transcript.Keys);
    }

    private void PlantAll() => repository
        .Write("config/aws.py", $"import os\nAWS_ACCESS_KEY_ID = \"{AwsKeyId}\"\naws_secret_access_key = \"{AwsSecret}\"\n")
        .Write("deploy/id_rsa", $"-----BEGIN RSA PRIVATE KEY-----\n{KeyBody}\n{KeyBody}\n-----END RSA PRIVATE KEY-----\n")
        .Write("src/github.ts", $"// CI token\nconst token = \"{GitHubToken}\";\n")
        .Write("src/slack.js", $"const SLACK = '{SlackToken}';\n")
        .Write("src/billing.rb", $"Stripe.api_key = \"{StripeKey}\"\n")
        .Write("web/maps.html", $"<script src=\"https://maps.googleapis.com/maps/api/js?key={GoogleKey}\"></script>\n")
        .Write("tests/fixture.json", $"{{\"auth\": \"{Jwt}\"}}\n")
        .Write("app/settings.py", $"DEBUG = False\n\nDB_PASSWORD = \"{DbPassword}\"\n")
        .Write("docker-compose.yml", $"services:\n  api:\n    environment:\n      DATABASE_URL: postgres://app:{UrlPassword}@db.internal:5432/app\n")
        .Write("appsettings.json", $"{{\n  \"Default\": \"Server=db;Database=app;User Id=sa;Password={SqlPassword};\"\n}}\n")
        .Write("config/app.yml", $"service:\n  api_key: {YamlApiKey}\n")
        .Write(".env", "# local settings\nNODE_ENV=production\nEMPTY=\nAPI_KEY=changeme\n")
        .Write(".env.example", "API_KEY=abc\n")
        .Write("README.md", "# Demo\n");
}
