using System.Net;
using AgentWorker.Core.Egress;

namespace AgentWorker.Orchestration.Policy;

/// <summary>Where an allowed URL may be fetched: the checked address the connection must go to (so a second lookup cannot change it).</summary>
internal sealed record UrlDecision(Uri Url, string Host, int Port, IPAddress Address);

/// <summary>
/// URL rules of the web tools, decided before any connection: http and https only, no credentials in the URL; the
/// host and its addresses are the shared <see cref="EgressPolicy"/>'s decision (any public host, plus what a
/// <see cref="CidrRule"/> of <c>--web-allow</c> admits). Redirect targets go through the same check.
/// </summary>
internal sealed class UrlPolicy(IReadOnlyList<CidrRule> allow, Func<string, CancellationToken, Task<IPAddress[]>>? resolve = null)
{
    private readonly EgressPolicy _egress = new(allow, [], resolve);

    public async Task<UrlDecision> CheckAsync(string url, CancellationToken cancellationToken)
    {
        if (url.Any(c => char.IsControl(c) || c == ' '))
            throw TaskRefusedException.Policy("url: contains control characters or spaces");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
            throw TaskRefusedException.Argument($"url: '{url}' is not an absolute URL");
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            throw TaskRefusedException.Policy($"url: scheme '{uri.Scheme}' is not allowed (only http and https): {url}");
        if (uri.UserInfo.Length > 0)
            throw TaskRefusedException.Policy("url: credentials in URLs are not allowed");
        if (uri.IdnHost.Length == 0)
            throw TaskRefusedException.Argument($"url: '{url}' has no host");

        var decision = await _egress.DecideAsync(uri.IdnHost, uri.Port, allowHosts: null, cancellationToken).ConfigureAwait(false);
        if (decision.Unresolved)
            throw TaskRefusedException.Argument($"url: {decision.Reason}");
        if (!decision.Allowed)
            throw TaskRefusedException.Policy($"url: {url} refused: {decision.Reason} (allow it explicitly with --web-allow)");
        return new UrlDecision(uri, decision.Host, decision.Port, decision.Address!);
    }

    /// <summary>
    /// The rules of the run's egress proxy for <paramref name="decision"/>: the same ones, with the host pinned to the address
    /// checked here, so the proxy reaches what was checked without a second lookup.
    /// </summary>
    public EgressPolicy For(UrlDecision decision) => new(allow,
        decision.Url.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 ? [] : [new ResolvePin(decision.Host, decision.Port, decision.Address)], resolve);
}
