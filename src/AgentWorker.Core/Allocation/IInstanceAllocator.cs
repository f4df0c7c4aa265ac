namespace AgentWorker.Core.Allocation;

/// <summary>
/// A compute instance lent by the allocator (the seed's <c>{id, mcp_connection_url, api_url}</c>). <see cref="Body"/> is the
/// JSON exactly as the allocator sent it: <c>POST /return</c> sends it back unchanged.
/// </summary>
public sealed record BorrowedInstance(string Id, string? McpConnectionUrl, string? ApiUrl, string Body);

/// <summary>The instance allocator service: <c>POST /borrow</c> and <c>POST /return</c>.</summary>
public interface IInstanceAllocator
{
    /// <summary>Where it is, for logs and errors (no credentials).</summary>
    string Describe { get; }

    /// <summary>Borrows an instance. Throws <see cref="AllocatorException"/> when none can be had.</summary>
    Task<BorrowedInstance> BorrowAsync(CancellationToken cancellationToken);

    /// <summary>Gives <paramref name="instance"/> back. Throws <see cref="AllocatorException"/> when the allocator did not take it.</summary>
    Task ReturnAsync(BorrowedInstance instance, CancellationToken cancellationToken);
}

/// <summary>The allocator could not be reached or answered with an error; the message says which.</summary>
public sealed class AllocatorException(string message, Exception? inner = null) : Exception(message, inner);
