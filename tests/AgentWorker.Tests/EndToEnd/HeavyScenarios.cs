namespace AgentWorker.Tests.EndToEnd;

/// <summary>
/// Scenarios that keep both cores busy for a while (thousands of jobs, a server outage). They run alone, after the
/// parallel tests, so neither they nor tests that wait on short deadlines slow each other into a false failure.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HeavyScenarios
{
    public const string Name = "heavy scenarios";
}
