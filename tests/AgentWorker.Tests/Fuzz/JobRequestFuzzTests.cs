using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using FsCheck;
using FsCheck.Fluent;

namespace AgentWorker.Tests.Fuzz;

/// <summary>The request parser every intake shares (HTTP, CLI, raw Redis pushes), fuzzed in-process with shrinking.</summary>
public sealed class JobRequestFuzzTests
{
    public const int Cases = 10_000;

    private static readonly JsonSerializerOptions StoreJson = new(JsonSerializerDefaults.Web);

    private static readonly JobVocabulary Words = new(
        ["noop"], ["ghost", ""],
        ["/srv/repo", "https://git.example/app.git", "git@git.example:user/repo.git", "ssh://git.example/r", "file:///srv/r"],
        ["", "relative/path", "http://u:p@git.example/r", "-oProxyCommand=x", "ext::sh", "ftp://git.example/r", "a@b"]);

    [Fact]
    public void Parse_AnyBody_RefusesWithNamedFieldsOrGivesAJobEveryStoreCanKeep()
    {
        var bodies = Gen.Frequency((8, FuzzInputs.JobBody(Words)), (2, FuzzInputs.Value(3)));
        var property = Prop.ForAll(bodies.ToArbitrary(), text =>
        {
            JsonNode? body;
            try
            {
                body = JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                // Answered as "malformed JSON" by every intake.
                return;
            }
            var parsed = JobRequestParser.Parse(body, Words.Agents.Contains, defaultAgent: null, () => "generated-id");
            if (parsed.Job is not { } job)
            {
                Assert.NotEmpty(parsed.Errors);
                Assert.All(parsed.Errors, e => Assert.False(string.IsNullOrWhiteSpace(e.Key) || e.Value.Length == 0 || e.Value.Any(string.IsNullOrWhiteSpace)));
                return;
            }
            // What the stores do with it: serialize (PostgreSQL jsonb refuses \u0000), read back, and hand strings to git and the agent.
            var stored = JsonSerializer.Serialize(job, StoreJson);
            Assert.DoesNotContain("\\u0000", stored, StringComparison.Ordinal);
            var back = JsonSerializer.Deserialize<JobSpec>(stored, StoreJson)!;
            Assert.Equal((job.Id, job.Agent, job.Repo, job.Prompt, job.McpUrl, job.TimeoutSeconds, job.MaxAttempts, job.Priority, job.RunAt),
                (back.Id, back.Agent, back.Repo, back.Prompt, back.McpUrl, back.TimeoutSeconds, back.MaxAttempts, back.Priority, back.RunAt));
            Assert.Equal(job.Metadata?.ToJsonString(), back.Metadata?.ToJsonString());
            Assert.True(JobRequestParser.IsValidId(job.Id), job.Id);
            Assert.Contains(job.Agent, Words.Agents);
        });

        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases).WithEndSize(30), property);
    }
}
