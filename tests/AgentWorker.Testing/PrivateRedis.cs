using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AgentWorker.Testing;

/// <summary>
/// A redis-server of the test's own (loopback, random port, data in a temp dir) that the test may stop and start
/// again on the same port and data, like an operator restarting it. Append-only file on, so a stop loses nothing
/// Redis acknowledged. Needs `redis-server` on PATH (scripts/test.sh installs it).
/// </summary>
public sealed class PrivateRedis : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("aw-redis");
    private Process? _server;

    private PrivateRedis(int port) => Port = port;

    public int Port { get; }

    public string Url => $"redis://127.0.0.1:{Port}";

    public static async Task<PrivateRedis> StartAsync()
    {
        // A port free when asked may be taken before the server binds it; another one then.
        for (var attempt = 1; ; attempt++)
        {
            var redis = new PrivateRedis(LoopbackPort.Free());
            try
            {
                await redis.StartAgainAsync();
                return redis;
            }
            catch (InvalidOperationException) when (attempt < 5)
            {
                await redis.DisposeAsync();
            }
        }
    }

    /// <summary>Starts the server (again) on the same port and data directory and waits until it answers PING.</summary>
    public async Task StartAgainAsync()
    {
        if (_server is { HasExited: false })
            throw new InvalidOperationException("redis-server is already running");
        var start = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--dir", _dir.Path, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--logfile", _dir.Combine("redis.log"),
        })
        {
            start.ArgumentList.Add(arg);
        }
        _server = Process.Start(start)!;
        await Eventually.UntilAsync(PingsAsync, ok => ok || _server.HasExited, TimeSpan.FromSeconds(20), $"redis-server on port {Port} answers PING");
        if (_server.HasExited)
            throw new InvalidOperationException($"redis-server on port {Port} exited with {_server.ExitCode}: {Log()}");
    }

    /// <summary>Kills the server (SIGKILL: no goodbye to clients) and waits until it is gone.</summary>
    public async Task StopAsync()
    {
        if (_server is null || _server.HasExited)
            return;
        _server.Kill();
        await _server.WaitForExitAsync();
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[64];
            var read = await stream.ReadAsync(buffer);
            // While it loads the append-only file after a restart Redis answers -LOADING instead.
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private string Log()
    {
        var log = _dir.Combine("redis.log");
        return File.Exists(log) ? File.ReadAllText(log) : "(no log)";
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _server?.Dispose();
        _dir.Dispose();
    }
}
