using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Pipeline;
using AgentWorker.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentWorker.Bench;

/// <summary>
/// What the model gateway costs an agent (issue 17): the time to the first byte of a streamed answer through the gateway
/// beside the same request straight to the vendor, pairwise, and the rate of small requests either way, alternating. The
/// vendor is the bench's own Kestrel on 127.0.0.1 with HTTPS, as a model vendor is, its certificate from a CA the bench
/// makes and trusts the usual way (SSL_CERT_FILE); the gateway is the worker's, reached as an unsandboxed run reaches it
/// (plain HTTP on a loopback port of the run's, handed to the gateway's Kestrel), with its placeholder checked, usage
/// read and metered on every request, and its own HTTPS connections to the vendor checked against the same CA.
/// </summary>
internal static class GatewayBench
{
    private const string Path = "/v1/chat/completions";

    private const string CertificateVariable = "AGENT_WORKER_BENCH_GATEWAY_PFX";

    /// <summary>
    /// Makes a CA and the vendor's certificate, then runs the bench in a child process that trusts the CA through
    /// SSL_CERT_FILE: the TLS library reads the variable from the process's own environment, which a running .NET process
    /// cannot change.
    /// </summary>
    public static async Task<string> RunAsync(int firstBytes, int requests, int concurrency, CancellationToken cancellationToken)
    {
        if (Environment.GetEnvironmentVariable(CertificateVariable) is { } pfx)
        {
            using var certificate = X509CertificateLoader.LoadPkcs12FromFile(pfx, null);
            return await RunAsync(certificate, firstBytes, requests, concurrency, cancellationToken);
        }
        var dir = Directory.CreateTempSubdirectory("agent-worker-gateway-bench-").FullName;
        try
        {
            var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
            foreach (var arg in Environment.GetCommandLineArgs().Skip(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? 0 : 1))
                start.ArgumentList.Add(arg);
            start.Environment["SSL_CERT_FILE"] = WriteCertificates(dir);
            start.Environment[CertificateVariable] = System.IO.Path.Combine(dir, "vendor.pfx");
            using var child = Process.Start(start)!;
            var output = await child.StandardOutput.ReadToEndAsync(cancellationToken);
            await child.WaitForExitAsync(cancellationToken);
            return child.ExitCode == 0 ? output.Trim() : throw new InvalidOperationException($"the bench's child process exited with {child.ExitCode}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<string> RunAsync(X509Certificate2 certificate, int firstBytes, int requests, int concurrency, CancellationToken cancellationToken)
    {
        await using var vendor = await StartVendorAsync(certificate, cancellationToken);
        var port = vendor.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a).Port).First();
        await using var gateway = new ModelGatewayServer(
            new GatewayOptions(), new EgressPolicy([new CidrRule(IPAddress.Loopback, 32, port)], []), _ => "sk-bench-real-key",
            new NoJobMetrics(), NullLogger<ModelGatewayServer>.Instance);
        var model = new ModelVendor { Name = "bench", BaseUrlVariable = "BENCH_BASE_URL", Upstream = new Uri($"https://127.0.0.1:{port}/v1"), KeyVariable = "BENCH_API_KEY" };
        using var run = await gateway.OpenAsync(new GatewayRunRequest("bench", "bench", [model], ModelBudget.None, _ => ValueTask.CompletedTask), cancellationToken);
        var through = new Uri(run.ListenOnHost(), "bench/chat/completions");
        var direct = new Uri($"https://127.0.0.1:{port}{Path}");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = concurrency });
        client.DefaultRequestHeaders.Authorization = new("Bearer", run.Placeholder);

        // Warm both paths (JIT, connection pools) before anything is measured.
        for (var i = 0; i < 50; i++)
        {
            await FirstByteAsync(client, direct, cancellationToken);
            await FirstByteAsync(client, through, cancellationToken);
        }
        List<double> directFirst = [], gatewayFirst = [];
        for (var i = 0; i < firstBytes; i++)
        {
            directFirst.Add(await FirstByteAsync(client, direct, cancellationToken));
            gatewayFirst.Add(await FirstByteAsync(client, through, cancellationToken));
        }
        // Alternating, three each: the machine's drift hits both alike.
        List<double> directRates = [], gatewayRates = [];
        for (var i = 0; i < 3; i++)
        {
            directRates.Add(await RateAsync(client, direct, requests, concurrency, cancellationToken));
            gatewayRates.Add(await RateAsync(client, through, requests, concurrency, cancellationToken));
        }
        var usage = run.Meter.Report();
        var added = Percentiles.Of(gatewayFirst.Zip(directFirst, (g, d) => g - d));
        var directRate = directRates.Order().ElementAt(1);
        var gatewayRate = gatewayRates.Order().ElementAt(1);
        return new JsonObject
        {
            ["bench"] = "gateway",
            ["peer"] = "agent-worker",
            ["first_bytes"] = firstBytes,
            ["requests"] = requests,
            ["concurrency"] = concurrency,
            ["direct_first_byte_ms_p50"] = SandboxBench.Round(Percentiles.Of(directFirst).P50),
            ["gateway_first_byte_ms_p50"] = SandboxBench.Round(Percentiles.Of(gatewayFirst).P50),
            ["first_byte_added_ms_p50"] = SandboxBench.Round(added.P50),
            ["first_byte_added_ms_p99"] = SandboxBench.Round(added.P99),
            ["direct_requests_per_s"] = Math.Round(directRate, 0),
            ["gateway_requests_per_s"] = Math.Round(gatewayRate, 0),
            ["ratio_gateway_vs_direct_rate"] = Math.Round(gatewayRate / directRate, 3),
            // The meter saw every request through the gateway, with the usage the vendor reported.
            ["gateway_requests_metered"] = usage.Requests,
            ["gateway_tokens_metered"] = usage.InputTokens + usage.OutputTokens,
        }.ToJsonString();
    }

    /// <summary>Milliseconds from sending a streamed request to the first byte of its body.</summary>
    private static async Task<double> FirstByteAsync(HttpClient client, Uri url, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent("""{"model":"bench-1","stream":true}""", null, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[1];
        _ = await body.ReadAsync(buffer, cancellationToken);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        // Read the rest, so the connection goes back to the pool and the stream's usage is metered.
        await body.CopyToAsync(Stream.Null, cancellationToken);
        return elapsed;
    }

    /// <summary>Small non-streamed requests per second, <paramref name="concurrency"/> at a time.</summary>
    private static async Task<double> RateAsync(HttpClient client, Uri url, int requests, int concurrency, CancellationToken cancellationToken)
    {
        var next = 0;
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= requests)
            {
                using var content = new StringContent("""{"model":"bench-1","messages":[{"role":"user","content":"hi"}]}""", null, "application/json");
                using var response = await client.PostAsync(url, content, cancellationToken);
                response.EnsureSuccessStatusCode();
                await response.Content.LoadIntoBufferAsync(cancellationToken);
            }
        }));
        return requests / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    /// <summary>A CA (<c>ca.pem</c>, returned) and a certificate it signed for 127.0.0.1 with its key (<c>vendor.pfx</c>) in <paramref name="dir"/>.</summary>
    private static string WriteCertificates(string dir)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=agent-worker gateway bench CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        var caFile = System.IO.Path.Combine(dir, "ca.pem");
        File.WriteAllText(caFile, ca.ExportCertificatePem());

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);
        using var withKey = signed.CopyWithPrivateKey(key);
        File.WriteAllBytes(System.IO.Path.Combine(dir, "vendor.pfx"), withKey.Export(X509ContentType.Pkcs12));
        return caFile;
    }

    /// <summary>An OpenAI-shaped vendor: a small JSON answer with usage, or a stream whose first chunk is flushed at once.</summary>
    private static async Task<WebApplication> StartVendorAsync(X509Certificate2 certificate, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(certificate)));
        var app = builder.Build();
        app.MapPost(Path, async (HttpContext context) =>
        {
            var request = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            if (request?["stream"]?.GetValue<bool>() == true)
            {
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync("data: {\"model\":\"bench-1\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await context.Response.WriteAsync("data: {\"model\":\"bench-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n", context.RequestAborted);
                return;
            }
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"model":"bench-1","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}}""", context.RequestAborted);
        });
        await app.StartAsync(cancellationToken);
        return app;
    }
}
