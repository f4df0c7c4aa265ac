using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace AgentWorker.Tests.Fuzz;

/// <summary>
/// The three intake routes of the real HTTP host, on each backend, hit with generated bodies, headers and framings
/// over raw loopback sockets. Every answer must be 202 or a 4xx (problem+json when it has a body), and afterwards
/// the host must still serve: health, every accepted job readable, a valid job accepted.
/// </summary>
public sealed class HttpIntakeFuzzTests(ITestOutputHelper output)
{
    private const string Agents = """
        agents:
          - id: noop
            command: ["true"]
        """;

    private const int MaxBodyBytes = 64 * 1024;

    public static TheoryData<string, int> Backends => new() { { "sqlite", 3_000 }, { "redis", 1_500 }, { "postgres", 1_500 } };

    // The host runs no workers: accepted jobs are stored, never cloned.
    private static readonly JobVocabulary Words = new(
        ["noop", "ssot_auditor"], ["ghost", "", "NOOP"],
        ["/srv/fuzz/repo", "https://git.example/app.git", "git@git.example:user/repo.git", "file:///srv/fuzz/repo"],
        ["", "relative/path", "http://u:p@git.example/r", "-oProxyCommand=x", "ext::sh -c x", "ftp://git.example/r"]);

    private static readonly Gen<(string, string)> Authorization = Gen.Frequency(
        (20, Gen.Constant(("Authorization", $"Bearer {ApiHost.ApiKey}"))),
        (1, Gen.Elements("Bearer", "Bearer ", $"bearer {ApiHost.ApiKey}", $"Bearer  {ApiHost.ApiKey} ", "Basic dGVzdDp0ZXN0", "Bearer wrong-key-000", $"Bearer {ApiHost.ApiKey} x", "Bearer " + new string('k', 9_000))
            .Select(v => ("Authorization", v))),
        (1, HeaderValue.Select(v => ("Authorization", v))),
        (1, Gen.Constant(("X-No-Auth", "1"))));

    private static readonly Gen<(string, string)> ContentType = Gen.Elements(
            "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
            "application/json; charset=utf-16", "", "*/*; q=0", "application/problem+json")
        .Select(v => ("Content-Type", v));

    // Header values as Latin-1 text: anything but CR and LF, which would end the header instead of filling it.
    private static Gen<string> HeaderValue => Gen.Choose(0, 60)
        .SelectMany(n => Gen.Choose(0, 255).Where(c => c is not ('\r' or '\n')).Select(c => (char)c).ArrayOf(n))
        .Select(chars => new string(chars));

    private static readonly Gen<(string, string)> ExtraHeader = Gen.Zip(
        Gen.Elements("X-Forwarded-For", "Expect", "Content-Encoding", "Accept", "Last-Event-ID", "Accept-Charset", "X-Request-Id", "If-None-Match", "X Bad Name", "X-\u00e9", "")
            .Or(FuzzInputs.Text.Where(t => t.Length is > 0 and < 40 && !t.Any(c => c is '\r' or '\n' or ':' || c > '\u00ff'))),
        Gen.Elements("100-continue", "gzip", "*/*", "-1", "99999999999999999999", "").Or(HeaderValue));

    private static readonly Gen<FuzzRequest> Request =
        from route in Gen.Elements("/v1/jobs", "/queue", "/api/tasks")
        from body in FuzzInputs.Body(Words)
        from auth in Authorization
        from contentType in Gen.Frequency((4, ContentType.Select(c => new[] { c })), (1, Gen.Constant(Array.Empty<(string, string)>())))
        from extras in Gen.Choose(0, 3).SelectMany(ExtraHeader.ArrayOf)
        from framing in Gen.Frequency((12, Gen.Constant(Framing.Length)), (2, Gen.Constant(Framing.Chunked)), (1, Gen.Constant(Framing.Truncated)), (1, Gen.Constant(Framing.Unframed)))
        // Now and then a body over the limit: the same JSON with trailing spaces.
        from padding in Gen.Frequency((30, Gen.Constant(0)), (1, Gen.Choose(MaxBodyBytes - 100, MaxBodyBytes * 2)))
        select new FuzzRequest(route, padding == 0 ? body : [.. body, .. Enumerable.Repeat((byte)' ', padding)], [auth, .. contentType, .. extras], framing);

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task Intake_AnyRequest_Answers202Or4xx_AndTheHostKeepsServing(string backend, int cases)
    {
        await using var host = await ApiHost.StartAsync(Flags(backend), agentsYaml: Agents);
        var port = host.Client.BaseAddress!.Port;
        var seed = FuzzInputs.NewSeed();
        var accepted = new ConcurrentBag<string>();
        var statuses = new ConcurrentDictionary<int, int>();
        var unanswered = new ConcurrentQueue<FuzzRequest>();
        var failures = new ConcurrentQueue<string>();

        await Parallel.ForEachAsync(FuzzInputs.Sample(Request, cases, seed), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (request, _) =>
        {
            RawResponse? response;
            try
            {
                response = await RawHttp.SendAsync(port, request);
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or InvalidDataException or OperationCanceledException)
            {
                failures.Enqueue($"{e.GetType().Name}: {e.Message}\n  request: {request}");
                return;
            }
            if (response is null)
            {
                // A client that left mid-body may get no answer; every other request must get one.
                if (request.Framing == Framing.Truncated)
                    unanswered.Enqueue(request);
                else
                    failures.Enqueue($"no response\n  request: {request}");
                return;
            }
            statuses.AddOrUpdate(response.Status, 1, (_, n) => n + 1);
            if (Problem(response) is { } problem)
                failures.Enqueue($"{problem}\n  request: {request}\n  response: {response}");
            else if (response.Status == 202)
                accepted.Add(JsonDocument.Parse(response.Body).RootElement.GetProperty("id").GetString()!);
        });

        output.WriteLine($"{backend}: {cases} requests (seed {seed}): {string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}"))}, client left mid-body without an answer ×{unanswered.Count}");
        Assert.True(failures.IsEmpty, $"seed {seed}: {failures.Count} of {cases} requests answered badly; first:\n{string.Join("\n", failures.Take(3))}");
        // A run in which nothing got through would not have fuzzed the parser behind the checks.
        Assert.True(accepted.Count > cases / 50, $"seed {seed}: only {accepted.Count} of {cases} requests were accepted");
        await AssertStillServingAsync(host, accepted);
    }

    /// <summary>Null when the answer is one a client can act on; else what is wrong with it.</summary>
    private static string? Problem(RawResponse response)
    {
        if (response.Status != 202 && response.Status is < 400 or >= 500)
            return $"status {response.Status}";
        if (response.Status == 202)
        {
            var id = JsonDocument.Parse(response.Body).RootElement.GetProperty("id").GetString();
            return id is { Length: > 0 } ? null : "202 without a job id";
        }
        // Kestrel refuses malformed requests with an empty 400/431; everything the API says is problem+json.
        if (response.Body.Length == 0)
            return null;
        if (response.ContentType?.StartsWith("application/problem+json", StringComparison.Ordinal) != true)
            return "a 4xx body that is not problem+json";
        var body = JsonDocument.Parse(response.Body).RootElement;
        if (body.GetProperty("status").GetInt32() != response.Status || string.IsNullOrWhiteSpace(body.GetProperty("title").GetString()))
            return "problem without matching status and a title";
        if (body.TryGetProperty("errors", out var errors) && errors.EnumerateObject().Any(e => string.IsNullOrWhiteSpace(e.Name)))
            return "a validation error that names no field";
        return null;
    }

    private static async Task AssertStillServingAsync(ApiHost host, IEnumerable<string> accepted)
    {
        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        foreach (var id in accepted.Distinct())
        {
            using var job = await host.Client.GetAsync($"/v1/jobs/{Uri.EscapeDataString(id)}");
            Assert.True(job.StatusCode == HttpStatusCode.OK, $"accepted job {id}: {(int)job.StatusCode} {await job.Content.ReadAsStringAsync()}");
        }
        // Listing serializes every stored job again, metadata and all.
        var total = await host.StoredJobsAsync();
        for (var offset = 0; offset < total; offset += 500)
        {
            using var page = await host.Client.GetAsync($"/v1/jobs?limit=500&offset={offset}");
            Assert.True(page.StatusCode == HttpStatusCode.OK, $"page at {offset}: {(int)page.StatusCode} {await page.Content.ReadAsStringAsync()}");
        }

        var valid = $$"""{"id":"after-fuzz","agent":"noop","repo":{"url":"/srv/fuzz/repo"},"prompt":"still here"}""";
        using var submit = await host.Client.PostAsync("/v1/jobs", new StringContent(valid, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Accepted, submit.StatusCode);
        var stored = await host.Client.GetFromJsonAsync<JsonElement>("/v1/jobs/after-fuzz");
        Assert.Equal("still here", stored.GetProperty("prompt").GetString());
    }

    private static Dictionary<string, string> Flags(string backend)
    {
        var flags = new Dictionary<string, string>
        {
            ["--rate-limit-per-minute"] = "0",
            ["--max-queue-depth"] = "0",
            ["--max-body-bytes"] = MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["--backend"] = backend,
        };
        var unique = $"fuzz_{Guid.NewGuid():N}"[..17];
        if (backend == "redis")
        {
            flags["--redis-url"] = ServerUrl("REDIS_URL");
            flags["--queue-name"] = unique;
        }
        else if (backend == "postgres")
        {
            flags["--postgres-url"] = ServerUrl("POSTGRES_URL");
            flags["--postgres-schema"] = unique;
        }
        return flags;
    }

    public static string ServerUrl(string variable) => Environment.GetEnvironmentVariable(variable)
        ?? throw new InvalidOperationException($"{variable} is not set: run the tests with scripts/test.sh, which starts the server");
}
