using AgentWorker.Core.Workspace;
using AgentWorker.Testing;

namespace AgentWorker.Core.Tests.Workspace;

// Each acquisition opens the path anew, so two locks in this process conflict exactly as two processes' would.
public sealed class FileLockTests : IDisposable
{
    private readonly TempDirectory _dir = new("aw-lock");

    private string LockPath => _dir.Combine("m.lock");

    [Fact]
    public void TryAcquire_SharedTwice_BothGranted()
    {
        using var first = FileLock.TryAcquire(LockPath, exclusive: false, create: true);
        using var second = FileLock.TryAcquire(LockPath, exclusive: false, create: true);

        Assert.NotNull(first);
        Assert.NotNull(second);
    }

    [Fact]
    public void TryAcquire_ExclusiveWhileShared_RefusedUntilReleased()
    {
        var shared = FileLock.TryAcquire(LockPath, exclusive: false, create: true);
        Assert.NotNull(shared);

        Assert.Null(FileLock.TryAcquire(LockPath, exclusive: true, create: false));
        shared.Dispose();
        using var exclusive = FileLock.TryAcquire(LockPath, exclusive: true, create: false);
        Assert.NotNull(exclusive);
        Assert.Null(FileLock.TryAcquire(LockPath, exclusive: false, create: false));
    }

    [Fact]
    public void TryAcquire_Directory_LocksIt()
    {
        var dir = _dir.Combine("mirror.git");
        Directory.CreateDirectory(dir);
        using var held = FileLock.TryAcquire(dir, exclusive: true, create: false);

        Assert.NotNull(held);
        Assert.Null(FileLock.TryAcquire(dir, exclusive: true, create: false));
    }

    [Fact]
    public void TryAcquire_MissingWithoutCreate_ThrowsNamingThePath()
    {
        var e = Assert.Throws<IOException>(() => FileLock.TryAcquire(_dir.Combine("nope.lock"), exclusive: false, create: false));

        Assert.Contains("nope.lock", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IsRemoved_FileDeletedAfterOpen_True()
    {
        // The case TryAcquire guards against: opened before a sweeper removed the file, locked after it let go.
        File.WriteAllText(LockPath, "");
        using var handle = File.OpenHandle(LockPath);
        Assert.False(FileLock.IsRemoved(handle));

        File.Delete(LockPath);

        Assert.True(FileLock.IsRemoved(handle));
    }

    [Fact]
    public async Task AcquireAsync_HolderReleases_Granted()
    {
        var holder = FileLock.TryAcquire(LockPath, exclusive: true, create: true)!;
        var waiting = FileLock.AcquireAsync(LockPath, exclusive: true, create: false, CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        holder.Dispose();

        using var granted = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(FileLock.TryAcquire(LockPath, exclusive: false, create: false));
    }

    [Fact]
    public async Task AcquireAsync_Cancelled_StopsWaiting()
    {
        using var held = FileLock.TryAcquire(LockPath, exclusive: true, create: true);
        using var cancel = new CancellationTokenSource();
        var waiting = FileLock.AcquireAsync(LockPath, exclusive: true, create: false, cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }

    public void Dispose() => _dir.Dispose();
}
