namespace AgentWorker.Core.Workspace;

/// <summary>Which repository locations a job may name, and how git is given them.</summary>
public static class RepoUrls
{
    private static readonly string[] Schemes = ["https", "http", "ssh", "git", "file"];

    /// <summary>Why a URL with user-info is refused, and what to configure instead.</summary>
    public const string CredentialsRefused =
        "must not embed credentials (a user name, password or token before '@'); set GIT_TOKEN on the worker for HTTPS, "
        + "or use an SSH key (GIT_SSH_KEY_FILE) with git@host:path or ssh://git@host/path";

    /// <summary>Returns null when <paramref name="url"/> is acceptable, else why not.</summary>
    public static string? Validate(string url)
    {
        if (string.IsNullOrWhiteSpace(url))
            return "must not be empty";
        if (url.StartsWith('-') || url.Any(char.IsControl) || url.Contains("::", StringComparison.Ordinal))
            return "is not a repository URL or path";
        if (Path.IsPathRooted(url))
            return null;
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && url.Contains("://", StringComparison.Ordinal))
        {
            if (!Schemes.Contains(uri.Scheme))
                return $"scheme '{uri.Scheme}' is not allowed (use {string.Join(", ", Schemes)}, scp-style user@host:path, or an absolute path)";
            // Any user-info of a URL may be a token (https://ghp_…@host): it would be stored, listed and logged with the job.
            // The one exception is ssh's login name without a password (ssh://git@host/path), as in scp-style git@host:path.
            if (uri.UserInfo.Length > 0 && !(uri.Scheme == "ssh" && !uri.UserInfo.Contains(':', StringComparison.Ordinal)))
                return CredentialsRefused;
            return null;
        }
        // scp-like syntax: user@host:path
        var at = url.IndexOf('@', StringComparison.Ordinal);
        var colon = url.IndexOf(':', StringComparison.Ordinal);
        if (at > 0 && colon > at + 1 && colon < url.Length - 1)
            return null;
        return "must be an https/ssh/git/file URL, scp-style user@host:path, or an absolute path";
    }

    /// <summary><paramref name="url"/> without a user name or password (intake refuses those; records never show one anyway).</summary>
    public static string WithoutCredentials(string url) =>
        url.Contains("://", StringComparison.Ordinal) && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0
            ? new UriBuilder(uri) { UserName = "", Password = "" }.Uri.AbsoluteUri
            : url;

    /// <summary>Local paths become file:// URLs so that --depth is honoured.</summary>
    public static string ToGitUrl(string url) => Path.IsPathRooted(url) ? new Uri(url).AbsoluteUri : url;
}
