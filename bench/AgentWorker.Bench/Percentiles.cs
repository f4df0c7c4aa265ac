namespace AgentWorker.Bench;

/// <summary>Order statistics picked the way the peer benchmarks pick them (sorted[n/2], sorted[(int)(n*0.99)]).</summary>
internal static class Percentiles
{
    public static (double P50, double P99) Of(IEnumerable<double> samples)
    {
        var sorted = samples.Order().ToArray();
        return (sorted[sorted.Length / 2], sorted[(int)(sorted.Length * 0.99)]);
    }
}
