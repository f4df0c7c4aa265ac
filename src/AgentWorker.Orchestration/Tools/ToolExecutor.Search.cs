using System.Globalization;
using AgentWorker.Core.Sandbox;
using AgentWorker.Orchestration.Policy;
using AgentWorker.Orchestration.Protocol;

namespace AgentWorker.Orchestration.Tools;

// grep, find, list: GNU tools in the sandbox; their lines stream up as they come. Arguments are argv entries,
// never a shell line, and paths are handed over in a form no tool can take for an option.
internal sealed partial class ToolExecutor
{
    private static readonly string[] FindTypes = ["", "f", "d", "l"];

    private static async Task<TaskResult> GrepAsync(ToolContext context, Grep args, CancellationToken cancellationToken)
    {
        if (args.Pattern.Length == 0)
            throw TaskRefusedException.Argument("pattern: required");
        RejectNul(args.Pattern, "pattern");
        RejectNul(args.Include, "include");
        if (args.MaxCount < 0)
            throw TaskRefusedException.Argument("max_count: must not be negative");
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: true);
        List<string> argv = ["grep", "-r", "-n", "-H", "-I", "--color=never", args.FixedStrings ? "-F" : "-E"];
        if (args.IgnoreCase)
            argv.Add("-i");
        if (args.MaxCount > 0)
            argv.Add($"--max-count={args.MaxCount.ToString(CultureInfo.InvariantCulture)}");
        if (args.Include.Length > 0)
            argv.Add($"--include={args.Include}");
        argv.AddRange(["-e", args.Pattern]);
        // Without a file operand grep -r searches the working directory (the workspace) and names files relative to it.
        if (!path.IsRoot)
            argv.AddRange(["--", path.Relative]);
        // grep exits 1 when nothing matched: an empty answer, not a failure.
        return await StreamLinesAsync(context, _ => argv, line => line, cancellationToken, okExitCodes: 1).ConfigureAwait(false);
    }

    private static async Task<TaskResult> FindAsync(ToolContext context, Find args, CancellationToken cancellationToken)
    {
        RejectNul(args.Name, "name");
        if (!FindTypes.Contains(args.Type))
            throw TaskRefusedException.Argument($"type: '{args.Type}' is not f, d or l");
        if (args.MaxDepth < 0)
            throw TaskRefusedException.Argument("max_depth: must not be negative");
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: true);
        // "./x" can never be read as an expression, whatever the file is called.
        List<string> argv = ["find", path.IsRoot ? "." : $"./{path.Relative}", "-mindepth", "1"];
        if (args.MaxDepth > 0)
            argv.AddRange(["-maxdepth", args.MaxDepth.ToString(CultureInfo.InvariantCulture)]);
        if (args.Type.Length > 0)
            argv.AddRange(["-type", args.Type]);
        if (args.Name.Length > 0)
            argv.AddRange(["-name", args.Name]);
        return await StreamLinesAsync(context, _ => argv, line => line.StartsWith("./", StringComparison.Ordinal) ? line[2..] : line, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<TaskResult> ListAsync(ToolContext context, List args, CancellationToken cancellationToken)
    {
        var path = WorkspacePaths.Resolve(context.Workspace!, args.Path, "path", allowRoot: true);
        return await StreamLinesAsync(context, run => ["ls", "-la", "--time-style=long-iso", "--", path.Inside(run.WorkspacePath)], line => line, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a line-oriented tool, sending stdout and stderr up in chunks as they come.</summary>
    private static async Task<TaskResult> StreamLinesAsync(ToolContext context, Func<SandboxRun, IReadOnlyList<string>> argv, Func<string, string> shape,
        CancellationToken cancellationToken, params int[] okExitCodes)
    {
        var box = context.Open();
        var stdout = context.Output.Lines(OutputStream.Stdout);
        var stderr = context.Output.Lines(OutputStream.Stderr);
        var lines = 0;
        var process = await box.RunAsync(argv, line =>
        {
            if (line.Stream == "stderr")
                return stderr.AddAsync(line.Text);
            lines++;
            return stdout.AddAsync(shape(line.Text));
        }, cancellationToken).ConfigureAwait(false);
        await stdout.FlushAsync().ConfigureAwait(false);
        await stderr.FlushAsync().ConfigureAwait(false);
        return process.Succeeded(okExitCodes)
            ? Success(box, ("lines", lines), ("truncated", process.Outcome.OutputTruncated))
            : box.Failure(process, context.CancelReason);
    }
}
