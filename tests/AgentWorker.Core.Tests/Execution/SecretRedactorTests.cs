using AgentWorker.Core.Execution;

namespace AgentWorker.Core.Tests.Execution;

public sealed class SecretRedactorTests
{
    [Theory]
    [InlineData("http://mcpuser:s3cret@mcp.example:8080/sse", "http://***@mcp.example:8080/sse")]
    [InlineData("cloning https://ghp_abc@github.com/o/r.git now", "cloning https://***@github.com/o/r.git now")]
    [InlineData("https://user:p@ss@host/x", "https://***@host/x")]
    [InlineData("""{"repo_url":"https://tok@h/x","mcp":"ws://u:p@m"}""", """{"repo_url":"https://***@h/x","mcp":"ws://***@m"}""")]
    [InlineData("ssh://git:pw@host/r.git", "ssh://***@host/r.git")]
    public void MaskUrlCredentials_UserInfo_IsMasked(string text, string expected) =>
        Assert.Equal(expected, SecretRedactor.MaskUrlCredentials(text));

    [Theory]
    [InlineData("ssh://git@host/r.git")]
    [InlineData("git@github.com:o/r.git")]
    [InlineData("https://host/path?x=a@b")]
    [InlineData("mail me at someone@example.com, see https://example.com/")]
    public void MaskUrlCredentials_NoCredentials_IsUnchanged(string text) =>
        Assert.Equal(text, SecretRedactor.MaskUrlCredentials(text));

    [Fact]
    public void Redact_MasksKnownSecretsAndUrlCredentials() =>
        Assert.Equal("key *** at http://***@mcp/", new SecretRedactor(["hunter22"]).Redact("key hunter22 at http://me:pw@mcp/"));
}
