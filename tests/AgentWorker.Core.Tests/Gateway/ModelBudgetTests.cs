using AgentWorker.Core.Gateway;

namespace AgentWorker.Core.Tests.Gateway;

public sealed class ModelBudgetTests
{
    [Fact]
    public void Narrow_PerFieldTheSmallerOfTheSetValues()
    {
        var agent = new ModelBudget(10, 1000, 5m);
        Assert.Equal(new ModelBudget(10, 500, 5m), agent.Narrow(new ModelBudget(20, 500, null)));
        Assert.Equal(new ModelBudget(3, 1000, 0.5m), agent.Narrow(new ModelBudget(3, null, 0.5m)));
    }

    [Fact]
    public void Narrow_FieldOnlyTheJobSets_Taken() =>
        Assert.Equal(new ModelBudget(4, 100, 1.5m), ModelBudget.None.Narrow(new ModelBudget(4, 100, 1.5m)));

    [Fact]
    public void Narrow_NoJobBudget_Unchanged()
    {
        var agent = new ModelBudget(10, null, 5m);
        Assert.Equal(agent, agent.Narrow(null));
        Assert.Equal(agent, agent.Narrow(ModelBudget.None));
    }

    [Fact]
    public void None_HasNoLimits() => Assert.Equal(new ModelBudget(null, null, null), ModelBudget.None);
}
