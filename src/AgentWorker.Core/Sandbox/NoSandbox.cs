namespace AgentWorker.Core.Sandbox;

/// <summary>`--sandbox none`: the agent runs as a plain child process (own session, cleared environment) with the worker's rights.</summary>
public sealed class NoSandbox : ISandbox
{
    public string Name => SandboxOptions.None;

    public SandboxRun Prepare(SandboxRequest request) => new Run(request, request.Gateway?.ListenOnHost());

    private sealed class Run(SandboxRequest request, Uri? gatewayUrl) : SandboxRun
    {
        public override Uri? GatewayUrl => gatewayUrl;
        public override string WorkspacePath => request.Workspace;
        public override string HomePath => request.Home;
        public override string TmpPath => request.Scratch;
        public override string? ArtifactsPath => request.Artifacts;

        public override Execution.ProcessSpec Wrap(Execution.ProcessSpec agent) => agent;
    }
}
