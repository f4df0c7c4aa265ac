using System.Collections.Frozen;
using System.Globalization;
using System.IO.Compression;
using System.IO.Hashing;
using System.Reflection;
using Microsoft.Net.Http.Headers;

namespace AgentWorker.Http;

/// <summary>
/// The dashboard (at <c>/</c>) and the API reference page (at <c>/api-reference</c>): static files embedded in the
/// binary from <c>src/AgentWorker/Dashboard</c>. They hold no data; everything they show comes from the API with the
/// bearer token the person logs in with, so they are served without it.
/// </summary>
internal static class Dashboard
{
    // Scripts, styles and requests only from this origin: no inline script, no CDN, no framing.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

    public static void MapDashboard(this IEndpointRouteBuilder app)
    {
        // Read and compressed on the first request, not at start-up: a worker nobody opens the dashboard of never maps
        // the compression library nor holds the files (7 MB of idle `serve` RSS, bench/README.md "Startup").
        var assets = new Lazy<DashboardAssets>(() => DashboardAssets.Load(typeof(Dashboard).Assembly));
        app.MapGet("/", (HttpContext http) => assets.Value.Serve(http, "index.html")).ExcludeFromDescription();
        app.MapGet("/api-reference", (HttpContext http) => assets.Value.Serve(http, "api.html")).ExcludeFromDescription();
        app.MapGet("/assets/{name}", (HttpContext http, string name) => assets.Value.Serve(http, name)).ExcludeFromDescription();
    }

    private sealed record Asset(byte[] Body, byte[] Gzip, string ContentType, string ETag);

    private sealed class DashboardAssets(FrozenDictionary<string, Asset> assets)
    {
        private const string Prefix = "dashboard/";

        public static DashboardAssets Load(Assembly assembly)
        {
            var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
            foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
            {
                using var stream = assembly.GetManifestResourceStream(resource)!;
                using var body = new MemoryStream();
                stream.CopyTo(body);
                var bytes = body.ToArray();
                var name = resource[Prefix.Length..];
                assets[name] = new Asset(bytes, Gzip(bytes), ContentType(name), ETag(bytes));
            }
            return new DashboardAssets(assets.ToFrozenDictionary(StringComparer.Ordinal));
        }

        public IResult Serve(HttpContext http, string name)
        {
            if (!assets.TryGetValue(name, out var asset))
                return Problems.Create(StatusCodes.Status404NotFound, "Not found", $"no dashboard file '{name}'");
            var headers = http.Response.Headers;
            headers.ETag = asset.ETag;
            // Revalidated on every load (cheap: 304 by ETag), so a new binary's files are picked up at once.
            headers.CacheControl = "no-cache";
            headers.Vary = HeaderNames.AcceptEncoding;
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "no-referrer";
            if (asset.ContentType.StartsWith("text/html", StringComparison.Ordinal))
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
            if (http.Request.Headers.IfNoneMatch.Contains(asset.ETag))
                return TypedResults.StatusCode(StatusCodes.Status304NotModified);
            if (!AcceptsGzip(http.Request))
                return TypedResults.Bytes(asset.Body, asset.ContentType);
            headers.ContentEncoding = "gzip";
            return TypedResults.Bytes(asset.Gzip, asset.ContentType);
        }

        private static bool AcceptsGzip(HttpRequest request) =>
            StringWithQualityHeaderValue.TryParseList(request.Headers.AcceptEncoding, out var codings)
            && codings.Any(c => c.Value.Equals("gzip", StringComparison.OrdinalIgnoreCase) && c.Quality is not 0);

        /// <summary>A content hash, not a secret: xxHash3 rather than SHA-256, which would load OpenSSL for it.</summary>
        private static string ETag(byte[] bytes) => $"\"{XxHash3.HashToUInt64(bytes).ToString("x16", CultureInfo.InvariantCulture)}\"";

        private static byte[] Gzip(byte[] bytes)
        {
            using var output = new MemoryStream();
            using (var gzip = new GZipStream(output, CompressionLevel.SmallestSize))
                gzip.Write(bytes);
            return output.ToArray();
        }

        private static string ContentType(string name) => Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "application/octet-stream",
        };
    }
}
