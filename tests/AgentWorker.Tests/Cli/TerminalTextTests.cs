using AgentWorker.Cli;

namespace AgentWorker.Tests.Cli;

public sealed class TerminalTextTests
{
    [Theory]
    [InlineData("A\u001b[31mB\u0007C\rD\0E", @"A\x1b[31mB\x07C\rD\x00E")]
    [InlineData("one\ntwo", @"one\ntwo")]
    [InlineData("del\u007f csi\u009b2J", @"del\x7f csi\u009b2J")]
    [InlineData("evil\u202Etxt.exe", @"evil\u202etxt.exe")]
    public void Escape_ControlCharacters_BecomeVisibleEscapes(string text, string expected) =>
        Assert.Equal(expected, TerminalText.Escape(text));

    [Theory]
    [InlineData("key AKIA… leaked")]
    [InlineData("col1\tcol2")]
    [InlineData(@"C:\path\x1b is text")]
    [InlineData("Grüße, 日本語, 🙂")]
    public void Escape_PrintableTextAndTab_AreKept(string text) =>
        Assert.Same(text, TerminalText.Escape(text));
}
