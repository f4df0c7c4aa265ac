using System.Buffers;
using System.Net.Sockets;

namespace AgentWorker.Core.Egress;

/// <summary>One direction of a relayed connection.</summary>
internal static class SocketPipe
{
    private const int BufferSize = 256 * 1024;

    /// <summary>
    /// Copies from <paramref name="from"/> to <paramref name="to"/> until end of stream, then half-closes <paramref name="to"/>
    /// so the far side sees the end while the answer still flows back. <paramref name="onRead"/> sees each read's size and
    /// stops the copy by returning false. Any failure cancels <paramref name="stop"/>, which ends the other direction too.
    /// Returns the bytes copied plus <paramref name="already"/>.
    /// </summary>
    public static async Task<long> CopyAsync(Socket from, Socket to, long already, CancellationTokenSource stop, Func<int, bool> onRead)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var total = already;
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, stop.Token).ConfigureAwait(false);
                if (read == 0)
                    break;
                total += read;
                if (!onRead(read))
                {
                    await stop.CancelAsync().ConfigureAwait(false);
                    break;
                }
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, stop.Token).ConfigureAwait(false);
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            await stop.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return total;
    }
}
