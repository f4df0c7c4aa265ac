using StackExchange.Redis;

namespace AgentWorker.Storage.Redis;

/// <summary>
/// Where one queue lives. Everything but the producers' list sits under the hash tag <c>{name}</c>; the
/// producers' list is the bare queue name, which hashes to the same cluster slot as that tag.
/// </summary>
internal sealed class RedisKeys
{
    public RedisKeys(string queueName)
    {
        QueueName = queueName;
        Prefix = $"{{{queueName}}}";
        Raw = queueName;
        Ready = $"{Prefix}:ready";
        Intake = $"{Prefix}:intake";
        Dead = $"{Prefix}:dead";
        Signal = RedisChannel.Literal($"{Prefix}:signal");
    }

    public string QueueName { get; }

    /// <summary>Passed to every script as ARGV[1]; the scripts derive the other keys from it.</summary>
    public string Prefix { get; }

    /// <summary>The plain list external producers <c>LPUSH</c> raw job JSON onto, as the seed worker did.</summary>
    public string Raw { get; }

    /// <summary>Runnable jobs by priority, then enqueue order.</summary>
    public string Ready { get; }

    /// <summary>Raw pushes taken off <see cref="Raw"/> and not yet stored as jobs or dead-lettered.</summary>
    public string Intake { get; }

    /// <summary>Malformed raw pushes, newest first, as <c>{"raw":…,"reason":…,"at":…}</c>.</summary>
    public string Dead { get; }

    /// <summary>
    /// Pub/sub channel: <c>wake:&lt;origin&gt;</c> after one job became runnable, <c>wakeall:&lt;origin&gt;</c> after many did
    /// or a retry was scheduled, <c>cancel:&lt;id&gt;</c> for running jobs.
    /// </summary>
    public RedisChannel Signal { get; }

    public string Events(string id) => $"{Prefix}:events:{id}";
}
