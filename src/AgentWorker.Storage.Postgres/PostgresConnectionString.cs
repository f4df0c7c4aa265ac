using Npgsql;

namespace AgentWorker.Storage.Postgres;

/// <summary>
/// Turns what operators pass (a <c>postgresql://user:pass@host:port/db?sslmode=require</c> URL, as the seeds'
/// POSTGRES_URL/POSTGRES_DSN hold, or Npgsql key=value pairs) into Npgsql settings.
/// Messages never repeat the input: it may hold a password.
/// </summary>
public static class PostgresConnectionString
{
    /// <summary>Npgsql settings for a <c>postgresql://</c> URL or key=value pairs; throws <see cref="ArgumentException"/> (without the input) when invalid.</summary>
    public static NpgsqlConnectionStringBuilder Parse(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var text = connectionString.Trim();
        if (!text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) && !text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                return new NpgsqlConnectionStringBuilder(text);
            }
            catch (ArgumentException error)
            {
                throw new ArgumentException($"PostgreSQL connection string is not valid key=value pairs: {error.Message}", nameof(connectionString));
            }
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
            throw new ArgumentException("PostgreSQL URL is not valid (expected postgresql://user:password@host:port/database)", nameof(connectionString));
        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host.Trim('[', ']') };
        if (!uri.IsDefaultPort && uri.Port > 0)
            builder.Port = uri.Port;
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            if (colon >= 0)
                builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
            builder.Database = database;
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var value = equals < 0 ? "" : Uri.UnescapeDataString(pair[(equals + 1)..]);
            try
            {
                // libpq spells the common ones in snake_case; Npgsql accepts its own names with spaces.
                builder[key.Replace('_', ' ')] = value;
            }
            catch (ArgumentException)
            {
                throw new ArgumentException($"PostgreSQL URL parameter '{key}' is not supported", nameof(connectionString));
            }
        }
        return builder;
    }
}
