using System.CommandLine;
using System.Globalization;
using AgentWorker.Configuration;
using AgentWorker.Core.Jobs;

namespace AgentWorker.Cli;

/// <summary>`agents list` and `config show`.</summary>
internal static class InfoCommands
{
    public static Command Agents(CommandAction action)
    {
        var agents = new Command("agents", "Inspect the agent registry.");
        agents.Subcommands.Add(new Command("list", "Agents this worker can run (built-ins and AGENTS_FILE entries).").WithAction(action, (context, _) =>
        {
            Output.Table(["ID", "KIND", "TIMEOUT", "NETWORK", "MODELS", "DESCRIPTION"], context.LoadAgents().All.OrderBy(a => a.Id, StringComparer.Ordinal).Select(a => (IReadOnlyList<string>)
            [
                a.Id,
                a.BuiltIn ? "built-in" : "external",
                a.TimeoutSeconds?.ToString(CultureInfo.InvariantCulture) ?? "default",
                a.Network is { } network ? network.Name() + (a.AllowHosts.Count > 0 ? $" ({string.Join(", ", a.AllowHosts)})" : "") : "job",
                // The vendors it reaches through the model gateway, each with its upstream.
                a.Gateway.Count > 0 ? string.Join(", ", a.Gateway.Select(v => $"{v.Name} ({v.Upstream.Host})")) : "-",
                a.Description ?? string.Join(' ', a.Command),
            ]));
            return Task.FromResult(ExitCodes.Ok);
        }));
        return agents;
    }

    public static Command Config(CommandAction action, IEnumerable<Setting> settings)
    {
        var config = new Command("config", "Inspect configuration.");
        config.Subcommands.Add(new Command("show", "Effective settings and where each came from (secrets redacted).").WithAction(action, (context, _) =>
        {
            var values = context.Config.Values;
            Output.Table(["SETTING", "FLAG", "ENV", "VALUE", "FROM"], settings.Select(s =>
            {
                var (value, origin, source) = values.Describe(s);
                var shown = value is null ? "-" : s.Secret ? "***" : value;
                return (IReadOnlyList<string>)[s.Key, s.Flag, s.Env[0], shown, origin == ConfigOrigin.Default ? "default" : source];
            }));
            return Task.FromResult(ExitCodes.Ok);
        }));
        return config;
    }
}
