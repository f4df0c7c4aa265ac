using System.Globalization;

namespace AgentWorker.Core.Gateway;

/// <summary>
/// Counts one run's model use and enforces its <see cref="ModelBudget"/>. The gateway calls <see cref="Admit"/> before
/// forwarding a request and <see cref="Record"/> after its response, from any number of threads. Tokens and cost are
/// only known afterwards, so requests already in flight when a budget is reached may pass it; requests cannot: an
/// admitted request holds its place against <c>maxRequests</c> until recorded, so concurrent requests never exceed it.
/// </summary>
public sealed class UsageMeter(ModelBudget budget, PriceTable prices)
{
    internal const string MaxRequests = "maxRequests";
    internal const string MaxTokens = "maxTokens";
    internal const string MaxCostUsd = "maxCostUsd";

    private readonly Lock _gate = new();
    private readonly Dictionary<string, ModelTally> _models = new(StringComparer.Ordinal);
    private int _admitted;
    private int _requests;
    private long _tokens;
    private decimal _cost;
    private string? _budgetExceeded;

    /// <summary>
    /// Null when the request may go; else the refusal (e.g. "maxTokens 100 reached: 350 tokens used"), and from then on
    /// <see cref="BudgetExceeded"/> names that budget. Refused requests are not counted as requests.
    /// </summary>
    public string? Admit()
    {
        lock (_gate)
        {
            _budgetExceeded ??= ReachedBudget();
            if (_budgetExceeded is null)
            {
                _admitted++;
                return null;
            }
            return Describe(_budgetExceeded);
        }
    }

    /// <summary>The first budget a request was refused for ("maxRequests" | "maxTokens" | "maxCostUsd"), else null.</summary>
    public string? BudgetExceeded
    {
        get
        {
            lock (_gate)
                return _budgetExceeded;
        }
    }

    /// <summary>
    /// Counts one response under <paramref name="model"/> (from the response, else the request, else "unknown"; blank
    /// becomes "unknown"). Usage null: the request counts, with no tokens. Returns the call with its cost.
    /// </summary>
    public ModelCall Record(string model, TokenUsage? usage, TimeSpan latency)
    {
        model = string.IsNullOrWhiteSpace(model) ? "unknown" : model;
        var price = prices.Find(model);
        decimal? cost = price is null ? null : PriceTable.Cost(price, usage ?? new TokenUsage(0, 0, 0));
        lock (_gate)
        {
            if (!_models.TryGetValue(model, out var tally))
                _models.Add(model, tally = new ModelTally(price is not null));
            tally.Add(usage, cost ?? 0, Math.Max(0, latency.Ticks));
            _requests++;
            if (usage is not null)
                _tokens = TokenUsage.SaturatingAdd(_tokens, usage.Total);
            _cost += cost ?? 0;
        }
        return new ModelCall(model, usage, cost);
    }

    /// <summary>The run's usage so far. Requests == 0 and BudgetExceeded == null means no model was used: callers may omit it.</summary>
    public ModelUsageReport Report()
    {
        lock (_gate)
        {
            var ordered = _models.OrderBy(m => m.Key, StringComparer.Ordinal).ToList();
            var lines = ordered.Select(m => m.Value.Line(m.Key)).ToList();
            var priced = ordered.Where(m => m.Value.Priced).ToList();
            return new ModelUsageReport(
                _requests,
                lines.Aggregate(0L, (sum, line) => TokenUsage.SaturatingAdd(sum, line.InputTokens)),
                lines.Aggregate(0L, (sum, line) => TokenUsage.SaturatingAdd(sum, line.OutputTokens)),
                lines.Aggregate(0L, (sum, line) => TokenUsage.SaturatingAdd(sum, line.CachedTokens)),
                priced.Count == 0 ? null : _cost,
                [.. ordered.Where(m => !m.Value.Priced && m.Value.HasTokens).Select(m => m.Key)],
                _budgetExceeded,
                lines);
        }
    }

    /// <summary>The first budget (in the order requests, tokens, cost) that usage has reached; callers hold the lock.</summary>
    private string? ReachedBudget()
    {
        if (budget.MaxRequests is { } maxRequests && Math.Max(_admitted, _requests) >= maxRequests)
            return MaxRequests;
        if (budget.MaxTokens is { } maxTokens && _tokens >= maxTokens)
            return MaxTokens;
        if (budget.MaxCostUsd is { } maxCost && _cost >= maxCost)
            return MaxCostUsd;
        return null;
    }

    private string Describe(string reached) => reached switch
    {
        MaxRequests => $"{MaxRequests} {budget.MaxRequests} reached: {Math.Max(_admitted, _requests)} requests made",
        MaxTokens => $"{MaxTokens} {budget.MaxTokens} reached: {_tokens} tokens used",
        _ => $"{MaxCostUsd} {Usd(budget.MaxCostUsd ?? 0)} reached: {Usd(_cost)} USD spent",
    };

    private static string Usd(decimal amount) => amount.ToString("0.##########", CultureInfo.InvariantCulture);

    /// <summary>One model's running totals; only touched under the meter's lock.</summary>
    private sealed class ModelTally(bool priced)
    {
        private int _requests;
        private long _input;
        private long _output;
        private long _cached;
        private decimal _cost;
        private long _latencyTicks;

        public bool Priced => priced;

        public bool HasTokens => _input > 0 || _output > 0;

        public void Add(TokenUsage? usage, decimal cost, long latencyTicks)
        {
            _requests++;
            if (usage is not null)
            {
                _input = TokenUsage.SaturatingAdd(_input, usage.InputTokens);
                _output = TokenUsage.SaturatingAdd(_output, usage.OutputTokens);
                _cached = TokenUsage.SaturatingAdd(_cached, usage.CachedTokens);
            }
            _cost += cost;
            _latencyTicks = TokenUsage.SaturatingAdd(_latencyTicks, latencyTicks);
        }

        public ModelUsageLine Line(string model) =>
            new(model, _requests, _input, _output, _cached, priced ? _cost : null, TimeSpan.FromTicks(_latencyTicks).TotalMilliseconds);
    }
}
