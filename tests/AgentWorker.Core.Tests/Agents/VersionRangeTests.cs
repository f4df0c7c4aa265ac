using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class VersionRangeTests
{
    [Theory]
    [InlineData("^18.2.0", "18", true)]
    [InlineData("^18.2.0", "20", false)]
    [InlineData("^0.2.3", "0.3", false)]
    [InlineData(">=18", "20", true)]
    [InlineData(">=22", "20", false)]
    [InlineData(">=18 <21", "20", true)]
    [InlineData(">=18 <21", "21", false)]
    [InlineData("<20.5", "20", true)]
    [InlineData("<20", "20", false)]
    [InlineData("16 || 18", "18", true)]
    [InlineData("16 || 18", "20", false)]
    [InlineData("18.x", "18", true)]
    [InlineData("1.2 - 2.3", "2", true)]
    [InlineData("1.2 - 2.3", "3", false)]
    [InlineData("~3.10", "3.10", true)]
    [InlineData("~3.10", "3.11", false)]
    [InlineData("~=3.9", "3.11", true)]
    [InlineData("~=3.9.1", "3.10", false)]
    [InlineData(">=3.11,<3.13", "3.12", true)]
    [InlineData(">=3.11,<3.13", "3.10", false)]
    [InlineData("==3.11.*", "3.11", true)]
    [InlineData("lts/iron", "20", true)]
    public void Admits_PinnedPrefix_MatchesRangeSemantics(string range, string pinned, bool expected) =>
        Assert.Equal(expected, VersionRange.Admits(range, VersionRange.ParseVersion(pinned)!));

    [Theory]
    [InlineData("v20.11.1", new[] { 20, 11, 1 })]
    [InlineData("3.12-slim", new[] { 3, 12 })]
    [InlineData("18-alpine", new[] { 18 })]
    public void ParseVersion_LeadingNumbers_AreComponents(string text, int[] expected) =>
        Assert.Equal(expected, VersionRange.ParseVersion(text));

    [Theory]
    [InlineData("lts/iron")]
    [InlineData("system")]
    [InlineData("")]
    public void ParseVersion_NoLeadingNumber_IsNull(string text) => Assert.Null(VersionRange.ParseVersion(text));
}
