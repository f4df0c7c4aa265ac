namespace AgentWorker.Configuration;

/// <summary>Invalid configuration; the message names the setting. The CLI prints it and exits 2.</summary>
internal sealed class ConfigException(string message) : Exception(message);
