using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AgentWorker.Tests.Fuzz;

/// <summary>How a fuzzed request frames its body.</summary>
internal enum Framing
{
    /// <summary>A correct Content-Length.</summary>
    Length,

    /// <summary>Transfer-Encoding: chunked, in chunks of up to 7 bytes.</summary>
    Chunked,

    /// <summary>A Content-Length larger than what is sent, then the client stops sending.</summary>
    Truncated,

    /// <summary>Neither header: the body is left unread on a closed connection.</summary>
    Unframed,
}

/// <summary>A request written byte by byte, so headers and framing can be anything HttpClient would refuse to send.</summary>
internal sealed record FuzzRequest(string Route, byte[] Body, IReadOnlyList<(string Name, string Value)> Headers, Framing Framing)
{
    public byte[] Encode(int port)
    {
        var head = new StringBuilder($"POST {Route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
        foreach (var (name, value) in Headers)
            head.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        head.Append(Framing switch
        {
            Framing.Length => $"Content-Length: {Body.Length}\r\n",
            Framing.Truncated => $"Content-Length: {Body.Length + 10}\r\n",
            Framing.Chunked => "Transfer-Encoding: chunked\r\n",
            _ => "",
        });
        head.Append("\r\n");
        var bytes = new List<byte>(Encoding.Latin1.GetBytes(head.ToString()));
        if (Framing == Framing.Chunked)
        {
            foreach (var chunk in Body.Chunk(7))
            {
                bytes.AddRange(Encoding.ASCII.GetBytes($"{chunk.Length:x}\r\n"));
                bytes.AddRange(chunk);
                bytes.AddRange("\r\n"u8.ToArray());
            }
            bytes.AddRange("0\r\n\r\n"u8.ToArray());
        }
        else
        {
            bytes.AddRange(Body);
        }
        return [.. bytes];
    }

    /// <summary>For failure messages: what was sent, with the body cut short.</summary>
    public override string ToString()
    {
        var body = Encoding.UTF8.GetString(Body);
        return $"POST {Route} [{Framing}] {string.Join(" | ", Headers.Select(h => $"{h.Name}: {h.Value}"))} body({Body.Length}): {(body.Length > 300 ? body[..300] + "…" : body)}";
    }
}

/// <summary>The final response to a raw request: status, headers (names lower-cased) and body.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public string? ContentType => Headers.GetValueOrDefault("content-type");

    public override string ToString() => $"{Status} {ContentType} {(Body.Length > 300 ? Body[..300] + "…" : Body)}";
}

/// <summary>
/// Sends one request on its own loopback connection and reads the final response (1xx interim answers skipped) until
/// the server closes. Null when the connection ended without a final response.
/// </summary>
internal static class RawHttp
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    public static async Task<RawResponse?> SendAsync(int port, FuzzRequest request)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        try
        {
            await socket.SendAsync(request.Encode(port), SocketFlags.None, timeout.Token);
            // A client that goes away mid-body. Kestrel takes a half-close as the client leaving, so other requests keep sending.
            if (request.Framing == Framing.Truncated)
                socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // The server may answer (e.g. 431, 413) and close before reading everything; the answer is still there to read.
        }
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
                received.Write(buffer, 0, read);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset && received.Length > 0)
        {
            // Reset after the answer arrived: Kestrel closed with part of the request unread.
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return null;
        }
        var text = Encoding.Latin1.GetString(received.ToArray());
        var final = WithoutInterimAnswers(text);
        // Only interim answers (e.g. "100 Continue" to a client that then left mid-body) is no answer at all.
        return final.Length == 0 ? null
            : Parse(final) ?? throw new InvalidDataException($"not an HTTP response: {text}");
    }

    private static string WithoutInterimAnswers(string text)
    {
        while (text.StartsWith("HTTP/1.1 1", StringComparison.Ordinal) && text.IndexOf("\r\n\r\n", StringComparison.Ordinal) is var end and >= 0)
            text = text[(end + 4)..];
        return text;
    }

    private static RawResponse? Parse(string text)
    {
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (!text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) || end < 0)
            return null;
        var lines = text[..end].Split("\r\n");
        var status = int.Parse(lines[0].AsSpan(9, 3), CultureInfo.InvariantCulture);
        var rest = text[(end + 4)..];
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        if (headers.ContainsKey("transfer-encoding"))
            rest = Unchunk(rest);
        return new RawResponse(status, headers, Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(rest)));
    }

    private static string Unchunk(string text)
    {
        var body = new StringBuilder();
        var at = 0;
        while (at < text.Length)
        {
            var lineEnd = text.IndexOf("\r\n", at, StringComparison.Ordinal);
            var size = int.Parse(text.AsSpan(at, lineEnd - at), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
                break;
            body.Append(text, lineEnd + 2, size);
            at = lineEnd + 2 + size + 2;
        }
        return body.ToString();
    }
}
