using System.CommandLine;
using AgentWorker.Core.Agents;
using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Cli;

/// <summary>`agent exec ID`: runs a built-in agent in this (child) process, writing protocol lines to stdout.</summary>
internal static class AgentExecCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("id") { Description = "Built-in agent id." };
        var workspace = new Option<string>("--workspace") { Description = "Repository checkout to audit.", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "Task text (unused by the audit agents)." };
        var exec = new Command("exec", "Run a built-in agent in this process (the worker starts agents this way).") { id, workspace, prompt };
        exec.SetAction((parse, cancellationToken) =>
        {
            var agentId = parse.GetValue(id)!;
            var dir = parse.GetValue(workspace)!;
            if (BuiltInAgents.Find(agentId) is not { } agent)
            {
                Console.Error.WriteLine($"agent-worker: unknown built-in agent '{agentId}' (try: {string.Join(", ", BuiltInAgents.All.Select(a => a.Id))})");
                return Task.FromResult(ExitCodes.Usage);
            }
            if (!Directory.Exists(dir))
            {
                Console.Error.WriteLine($"agent-worker: invalid option --workspace: '{dir}' is not a directory");
                return Task.FromResult(ExitCodes.Usage);
            }
            try
            {
                agent.Run(Path.GetFullPath(dir), parse.GetValue(prompt), new AgentOutput(Console.Out), cancellationToken);
            }
            catch (AgentFailedException e)
            {
                // The last stderr line is what the job's error quotes.
                Console.Error.WriteLine($"{agentId}: {e.Message}");
                return Task.FromResult(ExitCodes.Failure);
            }
            return Task.FromResult(ExitCodes.Ok);
        });
        var agentCommand = new Command("agent", "Built-in agent entry points.") { Hidden = true };
        agentCommand.Subcommands.Add(exec);
        return agentCommand;
    }
}
