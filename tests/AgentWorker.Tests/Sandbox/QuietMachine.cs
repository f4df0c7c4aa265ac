namespace AgentWorker.Tests.Sandbox;

/// <summary>
/// Attack tests that also time the worker's <c>/health</c> while each hostile job runs: they run one class at a time,
/// after the parallel ones, so what they time is the worker under attack rather than the rest of the suite.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QuietMachine
{
    public const string Name = "Attacks timed by /health";
}
