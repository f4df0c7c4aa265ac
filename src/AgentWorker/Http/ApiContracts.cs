using AgentWorker.Core.Jobs;

namespace AgentWorker.Http;

/// <summary>Answer to a job submission on any intake route.</summary>
internal sealed record SubmitAnswer(string Id, JobState State, bool Created);

/// <summary>A page of jobs, newest first.</summary>
internal sealed record JobPageView(IEnumerable<JobView> Items, long Total, int Limit, int Offset);

/// <summary>A job's events after a sequence number; <see cref="Next"/> is the cursor for the following read.</summary>
internal sealed record EventPage(IReadOnlyList<JobEvent> Items, long Next);

/// <summary><see cref="Outcome"/> is <c>cancelled</c> (it was queued) or <c>cancel_requested</c> (its worker is told).</summary>
internal sealed record CancelAnswer(string Id, string Outcome);

internal sealed record RetryAnswer(string Id, JobState State);
