using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using AgentWorker.Core.Gateway;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace AgentWorker.Gateway;

/// <summary>
/// The gateway's Kestrel transport: its connections are the ones the runs accepted on their own listeners (in the run's
/// network namespace, on its unix socket, or on a host loopback port) and hand over, each already marked with its run.
/// No listening socket is shared between runs and no byte is relayed: Kestrel reads the agent's socket itself.
/// </summary>
internal sealed class RunConnections(ILogger logger) : IConnectionListenerFactory, IConnectionListenerFactorySelector, IConnectionListener
{
    /// <summary>The key under which a connection's <see cref="GatewayRun"/> is kept in its items.</summary>
    public const string RunItem = "agent-worker.gateway-run";

    private readonly Channel<ConnectionContext> _accepted = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SocketConnectionContextFactory _contexts = new(new SocketConnectionFactoryOptions(), logger);

    public EndPoint EndPoint { get; } = new RunsEndPoint();

    public bool CanBind(EndPoint endpoint) => endpoint is RunsEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken) => ValueTask.FromResult<IConnectionListener>(this);

    /// <summary>Hands one of <paramref name="run"/>'s connections to Kestrel; the task ends when the connection does (or the run).</summary>
    public Task ServeAsync(Socket socket, GatewayRun run)
    {
        // As Kestrel's own listener does: a small answer's last segment must not wait for the previous one's ACK.
        socket.NoDelay = true;
        var connection = _contexts.Create(socket);
        connection.Items[RunItem] = run;
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var onClose = connection.ConnectionClosed.Register(() => closed.TrySetResult());
        var onEnd = run.Ended.Register(() => connection.Abort(new ConnectionAbortedException("the run has ended")));
        if (!_accepted.Writer.TryWrite(connection))
            connection.Abort();
        return closed.Task.ContinueWith(_ =>
        {
            onClose.Dispose();
            onEnd.Dispose();
        }, TaskScheduler.Default);
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _accepted.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _accepted.Writer.TryComplete();
        _contexts.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>What Kestrel is told to listen on: the runs, not an address.</summary>
    private sealed class RunsEndPoint : EndPoint
    {
        public override string ToString() => "agent-worker model gateway (the runs' own listeners)";
    }
}
