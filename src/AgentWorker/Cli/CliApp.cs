using System.CommandLine;
using AgentWorker.Configuration;

namespace AgentWorker.Cli;

/// <summary>The `agent-worker` command line. Every setting is also a flag on every command (flags &gt; env &gt; file &gt; defaults).</summary>
internal static class CliApp
{
    public static async Task<int> RunAsync(string[] args)
    {
        var result = Create().Parse(args);
        if (result.Errors.Count > 0)
        {
            await Console.Error.WriteLineAsync($"agent-worker: {OneLine(string.Join("; ", result.Errors.Select(e => e.Message)))}");
            return ExitCodes.Usage;
        }
        // The host handles SIGTERM/SIGINT itself (graceful shutdown), so the parser must not cut it short.
        return await result.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    /// <summary>Errors are one line even when they quote a value holding line breaks or other control characters.</summary>
    private static string OneLine(string message) =>
        string.Concat(message.Select(c => c switch
        {
            '\n' => "\\n",
            '\r' => "\\r",
            _ when char.IsControl(c) => $"\\u{(int)c:x4}",
            _ => c.ToString(),
        }));

    /// <summary>The command tree, with every setting as a flag on every command.</summary>
    public static RootCommand Create()
    {
        var settingOptions = Settings.All.ToDictionary(s => s, s => new Option<string?>(s.Flag)
        {
            Description = $"{s.Help} [env {string.Join(", ", s.Env)}{(s.Default is null ? "" : $"; default {s.Default}")}]",
            Recursive = true,
            HelpName = "value",
        });
        var root = new RootCommand("AgentWorker: a self-hosted runner for AI coding agents. Queues agent jobs durably and runs each in a fresh git workspace.");
        foreach (var option in settingOptions.Values)
            root.Options.Add(option);

        CommandAction action = (parse, body) => async cancellationToken =>
        {
            var context = new CommandContext(parse, settingOptions);
            try
            {
                return await body(context, cancellationToken);
            }
            catch (ConfigException e)
            {
                await Console.Error.WriteLineAsync($"agent-worker: {OneLine(e.Message)}");
                return ExitCodes.Usage;
            }
            catch (CliException e)
            {
                await Console.Error.WriteLineAsync($"agent-worker: {OneLine(e.Message)}");
                return ExitCodes.Failure;
            }
        };

        root.Subcommands.Add(HostCommands.Serve(action));
        root.Subcommands.Add(HostCommands.Run(action));
        root.Subcommands.Add(HostCommands.TasksPoller(action));
        root.Subcommands.Add(AllocatorCommands.Create(action));
        root.Subcommands.Add(OrchestratorCommands.Connect(action));
        root.Subcommands.Add(OrchestratorCommands.Create(action));
        foreach (var command in QueueCommands.All(action))
            root.Subcommands.Add(command);
        root.Subcommands.Add(InfoCommands.Agents(action));
        root.Subcommands.Add(InfoCommands.Config(action, settingOptions.Keys));
        root.Subcommands.Add(DemoCommand.Create(action));
        root.Subcommands.Add(SandboxCommands.Create(action));
        root.Subcommands.Add(AgentExecCommand.Create());
        return root;
    }
}

/// <summary>Wraps a command body with configuration loading and error reporting.</summary>
internal delegate Func<CancellationToken, Task<int>> CommandAction(ParseResult parse, Func<CommandContext, CancellationToken, Task<int>> body);

internal static class CommandExtensions
{
    public static Command WithAction(this Command command, CommandAction action, Func<CommandContext, CancellationToken, Task<int>> body)
    {
        command.SetAction((parse, cancellationToken) => action(parse, body)(cancellationToken));
        return command;
    }
}
