namespace AgentWorker.Core.Agents.BuiltIn;

/// <summary>
/// An offline agent shipped in the binary. It runs as its own child process
/// (<c>agent-worker agent exec ID --workspace DIR</c>) so it gets the same isolation as any external agent.
/// </summary>
internal interface IBuiltInAgent
{
    string Id { get; }
    string Description { get; }

    /// <summary>Reads the checked-out repository under <paramref name="workspace"/> and reports through <paramref name="output"/>.</summary>
    void Run(string workspace, string? prompt, AgentOutput output, CancellationToken cancellationToken);
}
