using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentWorker.Core.Jobs;
using AgentWorker.Testing;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;
using StackExchange.Redis;

namespace AgentWorker.Tests.Fuzz;

/// <summary>
/// What producers LPUSH onto the Redis list, generated: every push must become a job or a dead letter with a
/// reason (none stranded in the intake list), and a valid push must still run to success afterwards.
/// </summary>
public sealed class RedisRawIntakeFuzzTests(ITestOutputHelper output)
{
    private const int Cases = 2_000;

    private const string Agents = """
        agents:
          - id: noop
            command: ["true"]
        """;

    // Accepted pushes are run by the host's workers. Their agents are not registered, so each attempt fails at once
    // and for good (no clone, no retry), and the valid push that follows the fuzz gets a worker slot.
    private static readonly JobVocabulary Words = new(
        ["unregistered"], ["ghost", ""], ["/nonexistent/fuzz-repo", "file:///nonexistent/fuzz"], ["", "relative", "-x", "ext::sh", "http://u:p@127.0.0.1/r"]);

    private static readonly Gen<byte[]> Push = Gen.Frequency(
        (9, FuzzInputs.Body(Words)),
        // Valid UTF-8 made invalid: a lone continuation byte, an overlong encoding, a cut multi-byte sequence.
        (1, Gen.Zip(FuzzInputs.JobBody(Words), Gen.Elements<byte[]>([0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xff, 0xfe])).Select(t =>
        {
            var text = Encoding.UTF8.GetBytes(t.Item1);
            var at = text.Length / 2;
            return (byte[])[.. text[..at], .. t.Item2, .. text[at..]];
        })));

    [Fact]
    public async Task RawPushes_AnyValue_BecomeAJobOrADeadLetterWithReason_AndAValidPushStillRuns()
    {
        var url = HttpIntakeFuzzTests.ServerUrl("REDIS_URL");
        var queue = $"fuzz_raw_{Guid.NewGuid():N}"[..17];
        using var repo = TestRepository.Create(new Dictionary<string, string> { ["README.md"] = "fuzz\n" });
        await using var host = await ApiHost.StartAsync(
            new() { ["--redis-url"] = url, ["--queue-name"] = queue, ["--rate-limit-per-minute"] = "0", ["--max-queue-depth"] = "0" },
            runWorkers: true, agentsYaml: Agents);
        using var redis = await ConnectionMultiplexer.ConnectAsync($"{new Uri(url).Host}:{new Uri(url).Port}");
        var db = redis.GetDatabase();
        var seed = FuzzInputs.NewSeed();
        var pushes = FuzzInputs.Sample(Push, Cases, seed);

        foreach (var batch in pushes.Chunk(200))
            await db.ListLeftPushAsync(queue, [.. batch.Select(b => (RedisValue)b)]);

        // What the worker should make of each push, by the parser it shares with the other intakes.
        var expected = pushes.Select(p => Expected(Encoding.UTF8.GetString(p))).ToList();
        var rejected = expected.Count(e => e is null);
        var dead = $"{{{queue}}}:dead";
        await Eventually.UntilAsync(
            async () => (Raw: await db.ListLengthAsync(queue), Intake: await db.ListLengthAsync($"{{{queue}}}:intake"), Dead: await db.ListLengthAsync(dead)),
            lengths => lengths.Raw == 0 && lengths.Intake == 0 && lengths.Dead >= rejected,
            TimeSpan.FromSeconds(60),
            $"seed {seed}: all {Cases} pushes taken in, {rejected} dead-lettered");

        output.WriteLine($"{Cases} raw pushes (seed {seed}): {Cases - rejected} stored as jobs, {rejected} dead-lettered");
        Assert.Equal(rejected, await db.ListLengthAsync(dead));
        foreach (var entry in await db.ListRangeAsync(dead))
        {
            var letter = JsonNode.Parse((string)entry!)!;
            Assert.False(string.IsNullOrWhiteSpace((string?)letter["reason"]), $"seed {seed}: dead letter without a reason: {entry}");
            Assert.NotNull((string?)letter["raw"]);
        }
        foreach (var id in expected.OfType<string>().Where(id => id != "generated").Distinct())
        {
            using var job = await host.Client.GetAsync($"/v1/jobs/{Uri.EscapeDataString(id)}");
            Assert.True(job.IsSuccessStatusCode, $"seed {seed}: accepted push {id} not stored: {(int)job.StatusCode}");
        }

        await db.ListLeftPushAsync(queue, $$"""{"id":"after-raw-fuzz","agent":"noop","repo_url":"{{repo.Path}}"}""");
        var final = await Eventually.UntilAsync(
            async () => (await host.Client.GetAsync("/v1/jobs/after-raw-fuzz")) is { IsSuccessStatusCode: true } r ? await r.Content.ReadFromJsonAsync<JsonElement>() : default,
            job => job.ValueKind == JsonValueKind.Object && job.GetProperty("state").GetString() is "succeeded" or "failed" or "dead",
            TimeSpan.FromSeconds(60),
            "the valid push after the fuzz runs");
        Assert.Equal("succeeded", final.GetProperty("state").GetString());
    }

    /// <summary>The job id a push should become ("generated" when it names none), or null for a dead letter.</summary>
    private static string? Expected(string raw)
    {
        try
        {
            return JobRequestParser.Parse(JsonNode.Parse(raw), _ => true, defaultAgent: "", () => "generated").Job?.Id;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
