using System.Text;
using AgentWorker.Orchestration.Protocol;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace AgentWorker.Orchestration.Worker;

/// <summary>
/// What a running task sends up the stream: status, progress and output. Output is cut into chunks that fit the
/// link's send limit (<c>--max-send-msg-size</c>), so results of any allowed size get through.
/// </summary>
internal sealed class TaskOutput(string taskId, Func<WorkerMessage, ValueTask> send, int chunkBytes, TimeProvider time)
{
    public string TaskId => taskId;

    public ValueTask StatusAsync(TaskState state, string message) =>
        SendAsync(new TaskEvent { Status = new Protocol.TaskStatus { State = state, Message = message } });

    public ValueTask ProgressAsync(string message, double percent = -1) =>
        SendAsync(new TaskEvent { Progress = new Progress { Message = message, Percent = percent } });

    public ValueTask ResultAsync(TaskResult result) => SendAsync(new TaskEvent { Result = result });

    public async ValueTask WriteAsync(OutputStream stream, ReadOnlyMemory<byte> data)
    {
        for (var offset = 0; offset < data.Length; offset += chunkBytes)
        {
            var piece = data.Slice(offset, Math.Min(chunkBytes, data.Length - offset));
            await SendAsync(new TaskEvent { Output = new OutputChunk { Stream = stream, Data = ByteString.CopyFrom(piece.Span) } }).ConfigureAwait(false);
        }
    }

    /// <summary>Sends the first <paramref name="maxBytes"/> bytes of a file as stdout, reading it chunk by chunk.</summary>
    public async ValueTask WriteFileAsync(string path, long maxBytes, CancellationToken cancellationToken)
    {
        await using var file = File.OpenRead(path);
        var buffer = new byte[chunkBytes];
        long sent = 0;
        int read;
        while (sent < maxBytes && (read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, maxBytes - sent)), cancellationToken).ConfigureAwait(false)) > 0)
        {
            await WriteAsync(OutputStream.Stdout, buffer.AsMemory(0, read)).ConfigureAwait(false);
            sent += read;
        }
    }

    /// <summary>Collects text lines of one stream into chunk-sized output messages.</summary>
    public LineBatch Lines(OutputStream stream) => new(this, stream, chunkBytes);

    private ValueTask SendAsync(TaskEvent taskEvent)
    {
        taskEvent.TaskId = taskId;
        taskEvent.At = Timestamp.FromDateTimeOffset(time.GetUtcNow());
        return send(new WorkerMessage { Event = taskEvent });
    }

    /// <summary>Lines of one stream, sent when a chunk is full and on <see cref="FlushAsync"/>.</summary>
    internal sealed class LineBatch(TaskOutput output, OutputStream stream, int chunkBytes)
    {
        private readonly MemoryStream _buffer = new();

        public async ValueTask AddAsync(string line)
        {
            var bytes = Encoding.UTF8.GetBytes(line + "\n");
            if (_buffer.Length + bytes.Length > chunkBytes)
                await FlushAsync().ConfigureAwait(false);
            _buffer.Write(bytes);
        }

        public async ValueTask FlushAsync()
        {
            if (_buffer.Length == 0)
                return;
            await output.WriteAsync(stream, _buffer.GetBuffer().AsMemory(0, (int)_buffer.Length)).ConfigureAwait(false);
            _buffer.SetLength(0);
        }
    }
}
