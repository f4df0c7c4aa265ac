using System.Globalization;
using System.Text;
using AgentWorker.Core.Sandbox;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Tools;

// file_read, file_write, file_edit: payloads pass through files in the sandbox's home, so they arrive byte for byte.
internal sealed partial class ToolExecutor
{
    private const string InFile = "in";
    private const string OutFile = "out";

    private static async Task<TaskResult> FileReadAsync(ToolContext context, FileRead args, CancellationToken cancellationToken)
    {
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: false);
        if (args.Offset < 0 || args.Limit < 0)
            throw TaskRefusedException.Argument("offset, limit: must not be negative");
        var limit = args.Limit > 0 ? Math.Min(args.Limit, context.Limits.MaxBytes) : context.Limits.MaxBytes;
        var box = context.Open();
        // One byte more than the limit tells a file that was cut from one that fit exactly.
        var process = await box.RunAsync(run => ReadArgv(run, path, args.Offset, limit + 1), null, cancellationToken).ConfigureAwait(false);
        if (!process.Succeeded())
            return box.Failure(process, context.CancelReason);
        var file = Path.Combine(box.HostHome, OutFile);
        var length = new FileInfo(file).Length;
        await context.Output.WriteFileAsync(file, limit, cancellationToken).ConfigureAwait(false);
        return Success(box, ("bytes", Math.Min(length, limit)), ("truncated", length > limit));
    }

    private static async Task<TaskResult> FileWriteAsync(ToolContext context, FileWrite args, CancellationToken cancellationToken)
    {
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: false);
        if (args.Content.Length > context.Limits.MaxBytes)
            throw new TaskRefusedException(ErrorCode.LimitExceeded, $"content: {args.Content.Length} bytes is more than {context.Tool} allows ({context.Limits.MaxBytes} bytes)");
        var box = context.Open();
        await using (var input = File.Create(Path.Combine(box.HostHome, InFile)))
            await input.WriteAsync(args.Content.Memory, cancellationToken).ConfigureAwait(false);
        var script = args.Append ? """mkdir -p -- "$1" && cat -- "$3" >> "$2" """ : """mkdir -p -- "$1" && cat -- "$3" > "$2" """;
        var process = await box.RunAsync(
            run => ["sh", "-c", script, "sh", path.ParentInside(run.WorkspacePath), path.Inside(run.WorkspacePath), $"{run.HomePath}/{InFile}"],
            null, cancellationToken).ConfigureAwait(false);
        return process.Succeeded()
            ? Success(box, ("bytes", args.Content.Length), ("path", path.Relative))
            : box.Failure(process, context.CancelReason);
    }

    private static async Task<TaskResult> FileEditAsync(ToolContext context, FileEdit args, CancellationToken cancellationToken)
    {
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: false);
        if (args.OldText.Length == 0)
            throw TaskRefusedException.Argument("old_text: required");
        if (args.OldText == args.NewText)
            throw TaskRefusedException.Argument("new_text: same as old_text, nothing to change");
        var max = context.Limits.MaxBytes;
        var box = context.Open();
        var read = await box.RunAsync(run => ReadArgv(run, path, 0, max + 1), null, cancellationToken).ConfigureAwait(false);
        if (!read.Succeeded())
            return box.Failure(read, context.CancelReason);
        var original = await File.ReadAllBytesAsync(Path.Combine(box.HostHome, OutFile), cancellationToken).ConfigureAwait(false);
        if (original.Length > max)
            return Failed(box, ErrorCode.LimitExceeded, $"{path.Relative} is larger than {context.Tool} allows ({max} bytes)");
        var (edited, count) = Replace(original, Encoding.UTF8.GetBytes(args.OldText), Encoding.UTF8.GetBytes(args.NewText));
        if (count == 0)
            return Failed(box, ErrorCode.InvalidArgument, $"old_text: not found in {path.Relative}");
        if (count > 1 && !args.ReplaceAll)
            return Failed(box, ErrorCode.InvalidArgument, $"old_text: occurs {count} times in {path.Relative}; give more context or set replace_all");
        if (edited.Length > max)
            return Failed(box, ErrorCode.LimitExceeded, $"{path.Relative} would grow past {context.Tool}'s limit ({max} bytes)");
        await File.WriteAllBytesAsync(Path.Combine(box.HostHome, InFile), edited, cancellationToken).ConfigureAwait(false);
        var write = await box.RunAsync(
            run => ["sh", "-c", """cat -- "$2" > "$1" """, "sh", path.Inside(run.WorkspacePath), $"{run.HomePath}/{InFile}"],
            null, cancellationToken).ConfigureAwait(false);
        return write.Succeeded()
            ? Success(box, ("replacements", count), ("bytes", edited.Length))
            : box.Failure(write, context.CancelReason);
    }

    /// <summary>dd copies a byte range of the file into the sandbox home, where the worker picks it up.</summary>
    private static IReadOnlyList<string> ReadArgv(SandboxRun run, WorkspacePath path, long offset, long count) =>
    [
        "dd", $"if={path.Inside(run.WorkspacePath)}", $"of={run.HomePath}/{OutFile}", "bs=65536", "iflag=skip_bytes,count_bytes",
        $"skip={offset.ToString(CultureInfo.InvariantCulture)}", $"count={count.ToString(CultureInfo.InvariantCulture)}", "status=none",
    ];

    private static TaskResult Failed(ToolSandbox box, ErrorCode code, string error) =>
        new() { State = TaskState.Failed, Code = code, Error = error, Usage = box.Usage };

    /// <summary>Replaces every occurrence of <paramref name="old"/>; returns the new bytes and how many there were.</summary>
    internal static (byte[] Edited, int Count) Replace(byte[] text, byte[] old, byte[] replacement)
    {
        var output = new MemoryStream(text.Length);
        var count = 0;
        var rest = text.AsSpan();
        int at;
        while ((at = rest.IndexOf(old)) >= 0)
        {
            count++;
            output.Write(rest[..at]);
            output.Write(replacement);
            rest = rest[(at + old.Length)..];
        }
        output.Write(rest);
        return (output.ToArray(), count);
    }
}
