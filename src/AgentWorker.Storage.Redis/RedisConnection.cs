using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

/// <summary>Turns the <c>REDIS_URL</c> forms the seeds used into StackExchange.Redis options.</summary>
internal static class RedisConnection
{
    public static ConfigurationOptions Parse(string redisUrl)
    {
        ConfigurationOptions options;
        if (Uri.TryCreate(redisUrl, UriKind.Absolute, out var uri) && uri.Scheme is "redis" or "rediss")
        {
            options = new ConfigurationOptions { Ssl = uri.Scheme == "rediss" };
            options.EndPoints.Add(uri.Host, uri.IsDefaultPort ? 6379 : uri.Port);
            if (uri.UserInfo.Length > 0)
            {
                var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
                var user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
                options.User = user.Length > 0 && colon >= 0 ? user : null;
                // redis://password@host (no colon) is how some clients spell a password without a user.
                options.Password = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[(colon + 1)..]);
            }
            var path = uri.AbsolutePath.Trim('/');
            if (path.Length > 0)
            {
                options.DefaultDatabase = int.TryParse(path, out var db) && db >= 0
                    ? db
                    : throw new ArgumentException($"Redis URL: database '{path}' is not a number", nameof(redisUrl));
            }
        }
        else
        {
            options = ConfigurationOptions.Parse(redisUrl);
        }
        // Start even while Redis is down and keep reconnecting in the background; commands fail meanwhile.
        options.AbortOnConnectFail = false;
        // ...and fail at once while disconnected instead of holding commands for later: the callers retry with backoff,
        // and an HTTP intake answered 503 must not have its job stored behind its back when the connection returns.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ClientName ??= "agent-worker";
        return options;
    }
}
