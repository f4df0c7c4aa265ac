using AgentWorker.Cli;

return await CliApp.RunAsync(args);
