using AgentWorker.Core.Execution;
using AgentWorker.Core.Queue;
using AgentWorker.Testing;
using Microsoft.Extensions.Time.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Polly.Timeout;

namespace AgentWorker.Core.Tests.Queue;

public sealed class BackendRetryTests
{
    private static readonly CancellationToken Token = CancellationToken.None;

    private readonly OutageQueue _queue = new();
    private readonly BackendHealth _health;
    private readonly BackendRetry _retry;

    public BackendRetryTests()
    {
        _health = new BackendHealth(_queue, new SecretRedactor(["hunter22"]), TimeProvider.System, NullLogger<BackendHealth>.Instance);
        _retry = new BackendRetry(_health, TimeProvider.System);
    }

    [Fact]
    public async Task UntilAvailableAsync_BackendDownForAFewCalls_RetriesUntilItAnswers_AndHealthShowsTheOutage()
    {
        var calls = 0;
        var seenDuringOutage = new List<BackendState>();

        var answer = await _retry.UntilAvailableAsync(_ =>
        {
            if (++calls <= 4)
            {
                if (calls > 1)
                    seenDuringOutage.Add(_health.Current);
                throw new BackendDownException();
            }
            return Task.FromResult(42);
        }, Token);

        Assert.Equal(42, answer);
        Assert.Equal(5, calls);
        Assert.All(seenDuringOutage, state => Assert.False(state.Up));
        Assert.Equal("connection refused", seenDuringOutage[0].Error);
        Assert.Equal(new BackendState("fake", Up: true, Error: null, DownSince: null, Outages: 1), _health.Current);
    }

    [Fact]
    public async Task UntilAvailableAsync_OtherError_IsNotRetried_AndTheBackendStaysUp()
    {
        var calls = 0;

        await Assert.ThrowsAsync<InvalidDataException>(() => _retry.UntilAvailableAsync<int>(_ =>
        {
            calls++;
            throw new InvalidDataException("bad record");
        }, Token));

        Assert.Equal(1, calls);
        Assert.True(_health.Current.Up);
    }

    [Fact]
    public async Task UntilAvailableAsync_Cancelled_StopsWaitingForTheBackend()
    {
        using var stop = new CancellationTokenSource();
        var calls = 0;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _retry.UntilAvailableAsync(_ =>
        {
            if (++calls == 3)
                stop.Cancel();
            throw new BackendDownException();
        }, stop.Token));

        Assert.Equal(3, calls);
        Assert.False(_health.Current.Up);
    }

    [Fact]
    public async Task QuicklyAsync_BackendStaysDown_GivesUpAfterThreeTries_WithTheFailure()
    {
        var calls = 0;

        await Assert.ThrowsAsync<BackendDownException>(() => _retry.QuicklyAsync<int>(_ =>
        {
            calls++;
            throw new BackendDownException();
        }, Token));

        Assert.Equal(3, calls);
        Assert.False(_health.Current.Up);
        Assert.Equal(1, _health.Current.Outages);
    }

    [Fact]
    public async Task QuicklyAsync_CallHangs_EachTryIsCutShort_AndCountsAsUnavailable()
    {
        var time = new FakeTimeProvider();
        var health = new BackendHealth(_queue, SecretRedactor.None, time, NullLogger<BackendHealth>.Instance);
        var calls = 0;

        var hanging = new BackendRetry(health, time).QuicklyAsync(async token =>
        {
            Interlocked.Increment(ref calls);
            await Task.Delay(Timeout.Infinite, token);
            return 0;
        }, Token);
        // Each try's timeout and the waits between tries run on the fake clock.
        await Eventually.UntilAsync(() =>
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            return hanging.IsCompleted;
        }, TimeSpan.FromSeconds(10), "three tries timed out");

        await Assert.ThrowsAsync<TimeoutRejectedException>(() => hanging);
        Assert.Equal(3, calls);
        Assert.Equal("no answer in time", health.Current.Error);
    }

    [Fact]
    public void ReportDown_MasksSecretsAndShortensTheError()
    {
        _health.ReportDown(new InvalidOperationException($"auth hunter22 failed {new string('x', 1000)}"));

        var error = _health.Current.Error!;
        Assert.DoesNotContain("hunter22", error, StringComparison.Ordinal);
        Assert.StartsWith("auth *** failed", error, StringComparison.Ordinal);
        Assert.True(error.Length <= 301);
    }

    [Fact]
    public void ReportDown_Twice_IsOneOutage_UntilReportUp()
    {
        _health.ReportDown(new BackendDownException());
        var since = _health.Current.DownSince;
        _health.ReportDown(new BackendDownException());

        Assert.Equal(since, _health.Current.DownSince);
        Assert.Equal(1, _health.Current.Outages);
        _health.ReportUp();
        _health.ReportDown(new BackendDownException());
        Assert.Equal(2, _health.Current.Outages);
    }
}
