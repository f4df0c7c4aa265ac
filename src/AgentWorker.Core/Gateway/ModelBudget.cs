namespace AgentWorker.Core.Gateway;

/// <summary>
/// Limits on one run's model use; null fields are unlimited. The agent's registry entry sets one and a job may only
/// narrow it, so a job cannot spend more than its operator allowed the agent.
/// </summary>
public sealed record ModelBudget(int? MaxRequests, long? MaxTokens, decimal? MaxCostUsd)
{
    public static ModelBudget None { get; } = new(null, null, null);

    /// <summary>Per field the smaller of the two non-null values (a field only one side sets is taken from it).</summary>
    public ModelBudget Narrow(ModelBudget? job) =>
        job is null
            ? this
            : new ModelBudget(Smaller(MaxRequests, job.MaxRequests), Smaller(MaxTokens, job.MaxTokens), Smaller(MaxCostUsd, job.MaxCostUsd));

    private static T? Smaller<T>(T? a, T? b) where T : struct, IComparable<T> =>
        a is null ? b : b is null ? a : a.Value.CompareTo(b.Value) <= 0 ? a : b;
}
