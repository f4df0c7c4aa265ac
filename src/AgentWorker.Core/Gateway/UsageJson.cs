using System.Text.Json;

namespace AgentWorker.Core.Gateway;

/// <summary>
/// Reads the model and usage out of one JSON payload (a whole response body or one event's data) with a forward-only
/// reader, looking only where vendors put them: the root's <c>model</c> and <c>usage</c>, and the same two inside a
/// root <c>message</c> (Anthropic <c>message_start</c>) or <c>response</c> (OpenAI Responses stream events). Everything
/// else is skipped unread, so a completion's content cannot pose as usage.
/// </summary>
internal static class UsageJson
{
    private static readonly JsonReaderOptions Options = new() { MaxDepth = 1024 };

    /// <summary>
    /// Copies what <paramref name="json"/> carries into <paramref name="into"/>, all or nothing: a payload that is not
    /// one well-formed JSON object (<c>[DONE]</c>, a cut-off body) changes nothing.
    /// </summary>
    public static void Read(ReadOnlySpan<byte> json, UsageFields into)
    {
        var found = new UsageFields();
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return;
            ReadContainer(ref reader, found, root: true);
            if (reader.Read())
                return;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a model name that is not valid UTF-8.
            return;
        }
        into.Overwrite(found);
    }

    private static void ReadContainer(ref Utf8JsonReader reader, UsageFields found, bool root)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                    found.Model = reader.GetString();
                else
                    reader.Skip();
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                    ReadUsage(ref reader, found);
                else
                    reader.Skip();
            }
            else if (root && (reader.ValueTextEquals("message"u8) || reader.ValueTextEquals("response"u8)))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                    ReadContainer(ref reader, found, root: false);
                else
                    reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadUsage(ref Utf8JsonReader reader, UsageFields found)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8))
                found.Input = ReadCount(ref reader) ?? found.Input;
            else if (reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8))
                found.Output = ReadCount(ref reader) ?? found.Output;
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
                found.CacheRead = ReadCount(ref reader) ?? found.CacheRead;
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
                found.CacheCreation = ReadCount(ref reader) ?? found.CacheCreation;
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("input_tokens_details"u8))
                found.CachedDetail = ReadCachedTokens(ref reader) ?? found.CachedDetail;
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static long? ReadCachedTokens(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }
        long? cached = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("cached_tokens"u8))
                cached = ReadCount(ref reader) ?? cached;
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return cached;
    }

    /// <summary>The next value as a token count; null (and skipped) when it is not a whole number of 0 or more.</summary>
    private static long? ReadCount(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var count) && count >= 0)
            return count;
        reader.Skip();
        return null;
    }
}
