using System.Globalization;
using System.Net.Sockets;
using AgentWorker.Core.Execution;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Tools;

// fetch_url and web_search: curl in a sandbox with network, one request per run and no redirects followed by
// curl itself. The worker checks every URL (the first and each redirect target) against the URL policy and
// pins the connection to the address it checked, so DNS cannot answer differently the second time.
internal sealed partial class ToolExecutor
{
    private const string BodyFile = "body";
    private const int CurlFileTooLarge = 63;
    private const int CurlWriteError = 23;
    private const int ExitBySigxfsz = 128 + 25;

    private async Task<TaskResult> WebSearchAsync(ToolContext context, WebSearch args, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(args.Query))
            throw TaskRefusedException.Argument("query: required");
        if (args.MaxResults < 0)
            throw TaskRefusedException.Argument("max_results: must not be negative");
        var url = options.SearchUrl!
            .Replace("{query}", Uri.EscapeDataString(args.Query), StringComparison.Ordinal)
            .Replace("{count}", (args.MaxResults > 0 ? args.MaxResults : 10).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        return await FetchAsync(context, url, cancellationToken).ConfigureAwait(false);
    }

    private async Task<TaskResult> FetchAsync(ToolContext context, string url, CancellationToken cancellationToken)
    {
        var current = url;
        for (var hop = 0; ; hop++)
        {
            UrlDecision decision;
            try
            {
                decision = await urls.CheckAsync(current, cancellationToken).ConfigureAwait(false);
            }
            catch (TaskRefusedException e) when (hop > 0)
            {
                throw new TaskRefusedException(e.Code, $"redirect to {current} refused: {e.Message}");
            }
            var box = context.Open();
            File.Delete(Path.Combine(box.HostHome, BodyFile));
            var reply = new List<string>();
            var process = await box.RunAsync(run => CurlArgv(decision, run, context.Limits.MaxBytes), line =>
            {
                if (line.Stream == "stdout")
                    reply.Add(line.Text);
                return ValueTask.CompletedTask;
            }, cancellationToken, urls.For(decision)).ConfigureAwait(false);
            if (process.Outcome is { End: ProcessEnd.Exited, ExitCode: CurlFileTooLarge or CurlWriteError or ExitBySigxfsz })
                return Failed(box, ErrorCode.LimitExceeded, $"{context.Tool}: the response from {decision.Url} is larger than {context.Limits.MaxBytes} bytes");
            if (!process.Succeeded())
                return box.Failure(process, context.CancelReason);

            var status = reply.Count > 0 && int.TryParse(reply[0], NumberStyles.None, CultureInfo.InvariantCulture, out var code) ? code : 0;
            var contentType = reply.Count > 1 ? reply[1] : "";
            var location = reply.Count > 2 ? reply[2] : "";
            if (status is >= 300 and < 400 && location.Length > 0)
            {
                if (hop >= options.MaxRedirects)
                    return Failed(box, ErrorCode.ToolFailed, $"{context.Tool}: more than {options.MaxRedirects} redirects from {url}");
                await context.Output.ProgressAsync($"redirect {status} to {location}").ConfigureAwait(false);
                current = location;
                continue;
            }
            var body = Path.Combine(box.HostHome, BodyFile);
            var length = File.Exists(body) ? new FileInfo(body).Length : 0;
            if (length > context.Limits.MaxBytes)
                return Failed(box, ErrorCode.LimitExceeded, $"{context.Tool}: the response from {decision.Url} is larger than {context.Limits.MaxBytes} bytes");
            if (length > 0)
                await context.Output.WriteFileAsync(body, length, cancellationToken).ConfigureAwait(false);
            var result = Success(box, ("http_status", status), ("content_type", contentType), ("final_url", decision.Url.AbsoluteUri), ("bytes", length));
            if (status >= 400)
            {
                result.State = TaskState.Failed;
                result.Code = ErrorCode.ToolFailed;
                result.Error = $"{context.Tool}: HTTP {status} from {decision.Url.AbsoluteUri}";
            }
            return result;
        }
    }

    private static IReadOnlyList<string> CurlArgv(UrlDecision decision, Core.Sandbox.SandboxRun run, long maxBytes)
    {
        List<string> argv =
        [
            // -q first: no .curlrc. Only http(s), and redirects come back to the worker.
            "curl", "-q", "--silent", "--show-error", "--proto", "=http,https", "--max-redirs", "0",
            "--max-filesize", maxBytes.ToString(CultureInfo.InvariantCulture),
            "--user-agent", "agent-worker",
            "--output", $"{run.HomePath}/{BodyFile}",
            "--write-out", "%{http_code}\\n%{content_type}\\n%{redirect_url}\\n",
        ];
        // Sandboxed, the run's egress proxy is the only way out; with --sandbox none curl goes straight to the checked address.
        if (run.NetworkVariables.TryGetValue("HTTPS_PROXY", out var proxy))
        {
            argv.AddRange(["--proxy", proxy]);
        }
        else
        {
            argv.AddRange(["--noproxy", "*"]);
            if (decision.Url.HostNameType is not (UriHostNameType.IPv4 or UriHostNameType.IPv6))
            {
                var address = decision.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{decision.Address}]" : decision.Address.ToString();
                argv.AddRange(["--resolve", $"{decision.Host}:{decision.Port.ToString(CultureInfo.InvariantCulture)}:{address}"]);
            }
        }
        argv.Add(decision.Url.AbsoluteUri);
        return argv;
    }
}
