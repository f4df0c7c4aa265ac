using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

public sealed class UsageMeterTests
{
    private static readonly PriceTable Prices = PriceTable.Parse("""
        {
          "gpt-4o": { "input": 2.5, "output": 10, "cachedInput": 1.25 },
          "claude-sonnet-4": { "input": 3, "output": 15 }
        }
        """);

    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(10);

    [Fact]
    public void NoBudget_AdmitsAndCounts()
    {
        var meter = new UsageMeter(ModelBudget.None, Prices);
        for (var i = 0; i < 50; i++)
        {
            Assert.Null(meter.Admit());
            meter.Record("gpt-4o", new TokenUsage(1000, 1000, 0), Latency);
        }
        Assert.Null(meter.BudgetExceeded);
        Assert.Equal(50, meter.Report().Requests);
    }

    [Fact]
    public void MaxRequests_RefusesTheRequestAfterTheLastAllowed_NotCounted()
    {
        var meter = new UsageMeter(new ModelBudget(2, null, null), Prices);
        for (var i = 0; i < 2; i++)
        {
            Assert.Null(meter.Admit());
            meter.Record("gpt-4o", new TokenUsage(10, 1, 0), Latency);
        }
        Assert.Null(meter.BudgetExceeded);
        Assert.Equal("maxRequests 2 reached: 2 requests made", meter.Admit());
        Assert.Equal("maxRequests 2 reached: 2 requests made", meter.Admit());
        Assert.Equal("maxRequests", meter.BudgetExceeded);
        var report = meter.Report();
        Assert.Equal(2, report.Requests);
        Assert.Equal(2, Assert.Single(report.Models).Requests);
        Assert.Equal("maxRequests", report.BudgetExceeded);
    }

    [Fact]
    public void MaxRequests_AdmittedRequestsInFlightHoldTheirPlace()
    {
        var meter = new UsageMeter(new ModelBudget(2, null, null), Prices);
        Assert.Null(meter.Admit());
        Assert.Null(meter.Admit());
        Assert.Equal("maxRequests 2 reached: 2 requests made", meter.Admit());
    }

    [Fact]
    public void MaxRequestsZero_RefusesTheFirst() =>
        Assert.Equal("maxRequests 0 reached: 0 requests made", new UsageMeter(new ModelBudget(0, null, null), Prices).Admit());

    [Fact]
    public void MaxTokens_InputPlusOutput_RefusesOnceReached()
    {
        var meter = new UsageMeter(new ModelBudget(null, 100, null), Prices);
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(60, 30, 50), Latency);
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(20, 0, 0), Latency);
        Assert.Null(meter.BudgetExceeded);
        Assert.Equal("maxTokens 100 reached: 110 tokens used", meter.Admit());
        Assert.Equal("maxTokens", meter.BudgetExceeded);
        Assert.Equal(2, meter.Report().Requests);
    }

    [Fact]
    public void MaxTokens_ExactlyReached_Refused()
    {
        var meter = new UsageMeter(new ModelBudget(null, 100, null), Prices);
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(99, 0, 0), Latency);
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(0, 1, 0), Latency);
        Assert.Equal("maxTokens 100 reached: 100 tokens used", meter.Admit());
    }

    [Fact]
    public void MaxCostUsd_RefusesOnceSpent()
    {
        var meter = new UsageMeter(new ModelBudget(null, null, 0.005m), Prices);
        Assert.Null(meter.Admit());
        Assert.Equal(0.0025m, meter.Record("gpt-4o", new TokenUsage(1000, 0, 0), Latency).CostUsd);
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(1000, 0, 0), Latency);
        Assert.Equal("maxCostUsd 0.005 reached: 0.005 USD spent", meter.Admit());
        Assert.Equal("maxCostUsd", meter.BudgetExceeded);
        Assert.Equal(0.005m, meter.Report().CostUsd);
    }

    [Fact]
    public void BudgetExceeded_KeepsTheFirstBudgetRefused()
    {
        var meter = new UsageMeter(new ModelBudget(3, 100, null), Prices);
        Assert.Null(meter.Admit());
        Assert.Null(meter.Admit());
        meter.Record("gpt-4o", new TokenUsage(100, 0, 0), Latency);
        Assert.Equal("maxTokens 100 reached: 100 tokens used", meter.Admit());
        meter.Record("gpt-4o", null, Latency);
        meter.Record("gpt-4o", null, Latency);
        Assert.Equal("maxTokens 100 reached: 100 tokens used", meter.Admit());
        Assert.Equal("maxTokens", meter.Report().BudgetExceeded);
    }

    [Fact]
    public void UnpricedModel_NullCostOnItsLine_NamedInUnpricedModels()
    {
        var meter = new UsageMeter(ModelBudget.None, Prices);
        var priced = meter.Record("gpt-4o-2024-08-06", new TokenUsage(1000, 200, 400), Latency);
        var unpriced = meter.Record("mystery-1", new TokenUsage(500, 50, 0), Latency);
        meter.Record("silent-1", null, Latency);

        Assert.Equal(new ModelCall("gpt-4o-2024-08-06", new TokenUsage(1000, 200, 400), 0.004m), priced);
        Assert.Null(unpriced.CostUsd);
        var report = meter.Report();
        Assert.Equal(0.004m, report.CostUsd);
        Assert.Equal(["mystery-1"], report.UnpricedModels);
        Assert.Null(report.Models.Single(m => m.Model == "mystery-1").CostUsd);
        Assert.Null(report.Models.Single(m => m.Model == "silent-1").CostUsd);
        Assert.Equal(0.004m, report.Models.Single(m => m.Model == "gpt-4o-2024-08-06").CostUsd);
    }

    [Fact]
    public void NoModelPriced_ReportCostNull()
    {
        var meter = new UsageMeter(ModelBudget.None, PriceTable.Empty);
        meter.Record("gpt-4o", new TokenUsage(10, 10, 0), Latency);
        Assert.Null(meter.Report().CostUsd);
        Assert.Equal(["gpt-4o"], meter.Report().UnpricedModels);
    }

    [Fact]
    public void PricedModelWithoutUsage_CountedAtZeroCost()
    {
        var meter = new UsageMeter(ModelBudget.None, Prices);
        var call = meter.Record("gpt-4o", null, Latency);
        Assert.Equal(new ModelCall("gpt-4o", null, 0m), call);
        var line = Assert.Single(meter.Report().Models);
        Assert.Equal(new ModelUsageLine("gpt-4o", 1, 0, 0, 0, 0m, 10), line);
        Assert.Equal(0m, meter.Report().CostUsd);
        Assert.Empty(meter.Report().UnpricedModels);
    }

    [Fact]
    public void Report_PerModelLinesOrderedByName_TotalsAndLatencySums()
    {
        var meter = new UsageMeter(ModelBudget.None, Prices);
        meter.Record("gpt-4o", new TokenUsage(100, 20, 40), TimeSpan.FromMilliseconds(12.5));
        meter.Record("claude-sonnet-4-20250514", new TokenUsage(1000, 100, 0), TimeSpan.FromMilliseconds(300));
        meter.Record("gpt-4o", new TokenUsage(20, 10, 0), TimeSpan.FromMilliseconds(7.5));
        meter.Record(" ", null, TimeSpan.FromMilliseconds(1));

        var report = meter.Report();
        var gptCost = (60 * 2.5m + 40 * 1.25m + 20 * 10m + 20 * 2.5m + 10 * 10m) / 1_000_000m;
        var claudeCost = (1000 * 3m + 100 * 15m) / 1_000_000m;
        Assert.Equal(
            [
                new ModelUsageLine("claude-sonnet-4-20250514", 1, 1000, 100, 0, claudeCost, 300),
                new ModelUsageLine("gpt-4o", 2, 120, 30, 40, gptCost, 20),
                new ModelUsageLine("unknown", 1, 0, 0, 0, null, 1),
            ],
            report.Models);
        Assert.Equal((4, 1120L, 130L, 40L, gptCost + claudeCost), (report.Requests, report.InputTokens, report.OutputTokens, report.CachedTokens, report.CostUsd));
        Assert.Empty(report.UnpricedModels);
        Assert.Null(report.BudgetExceeded);
    }

    [Fact]
    public void Report_NothingRecorded_Empty()
    {
        var report = new UsageMeter(new ModelBudget(5, null, null), Prices).Report();
        Assert.Equal((0, 0L, 0L, 0L, (decimal?)null, (string?)null), (report.Requests, report.InputTokens, report.OutputTokens, report.CachedTokens, report.CostUsd, report.BudgetExceeded));
        Assert.Empty(report.Models);
        Assert.Empty(report.UnpricedModels);
    }

    [Fact]
    public void ConcurrentRecords_SumExactly()
    {
        const int Threads = 8;
        const int PerThread = 2000;
        string[] models = ["gpt-4o", "claude-sonnet-4", "mystery-1"];
        var meter = new UsageMeter(ModelBudget.None, Prices);
        using var start = new Barrier(Threads);
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < PerThread; i++)
                meter.Record(models[(t + i) % models.Length], new TokenUsage(3, 2, 1), TimeSpan.FromTicks(5));
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        var report = meter.Report();
        const int Total = Threads * PerThread;
        Assert.Equal((Total, 3L * Total, 2L * Total, 1L * Total), (report.Requests, report.InputTokens, report.OutputTokens, report.CachedTokens));
        Assert.Equal(Total, report.Models.Sum(m => m.Requests));
        Assert.All(report.Models, m => Assert.Equal(m.Requests * 5 / 10_000.0, m.LatencyMs, 9));
        var perCall = (2 * 2.5m + 1 * 1.25m + 2 * 10m) / 1_000_000m;
        var perClaudeCall = (3 * 3m + 2 * 15m) / 1_000_000m;
        Assert.Equal(report.Models.Single(m => m.Model == "gpt-4o").Requests * perCall
            + report.Models.Single(m => m.Model == "claude-sonnet-4").Requests * perClaudeCall, report.CostUsd);
    }

    [Fact]
    public void ConcurrentAdmits_ExactlyMaxRequestsGo()
    {
        const int Threads = 8;
        var meter = new UsageMeter(new ModelBudget(100, null, null), Prices);
        var admitted = 0;
        using var start = new Barrier(Threads);
        var workers = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < 50; i++)
            {
                if (meter.Admit() is null)
                {
                    Interlocked.Increment(ref admitted);
                    meter.Record("gpt-4o", new TokenUsage(1, 1, 0), TimeSpan.Zero);
                }
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        Assert.Equal(100, admitted);
        Assert.Equal(100, meter.Report().Requests);
        Assert.Equal("maxRequests", meter.BudgetExceeded);
    }
}
