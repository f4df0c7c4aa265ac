using System.CommandLine;
using AgentWorker.Allocation;

namespace AgentWorker.Cli;

/// <summary>`allocator serve --pool FILE`: the reference instance allocator.</summary>
internal static class AllocatorCommands
{
    public static Command Create(CommandAction action)
    {
        var pool = new Option<string>("--pool") { Description = "YAML file listing the instances: `instances: [{id, mcp_connection_url, api_url}]`.", Required = true };
        var serve = new Command("serve", "Lend instances from a pool file over the seed's allocator API (POST /borrow, POST /return, GET /instances) on --host/--port.") { pool };
        serve.WithAction(action, async (context, cancellationToken) =>
        {
            var config = context.Config;
            IReadOnlyList<PoolInstance> instances;
            try
            {
                instances = ReferenceAllocator.ReadPool(context.Parse.GetValue(pool)!);
            }
            catch (PoolFileException e)
            {
                throw new Configuration.ConfigException($"invalid option --pool: {e.Message}");
            }
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
            builder.Logging.AddWorkerLogging(config);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.Listen(config.ListenAddress, config.Port);
                kestrel.AddServerHeader = false;
            });
            builder.Services.AddProblemDetails();
            await using var app = builder.Build();
            new ReferenceAllocator(instances).Map(app);
            try
            {
                await app.RunAsync();
            }
            catch (IOException e)
            {
                throw new CliException($"cannot listen on {config.ListenAddress}:{config.Port}: {e.Message}");
            }
            return ExitCodes.Ok;
        });
        var allocator = new Command("allocator", "The reference instance allocator (see docs/integrations.md).");
        allocator.Subcommands.Add(serve);
        return allocator;
    }
}
