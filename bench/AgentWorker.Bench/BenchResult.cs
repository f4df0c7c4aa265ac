using System.Buffers;
using System.Text;
using System.Text.Json;

namespace AgentWorker.Bench;

/// <summary>One run's numbers, printed as the same JSON line the peer benchmarks print.</summary>
internal sealed record BenchResult(
    string Peer,
    int Jobs,
    int Workers,
    double EnqueuePerSecond,
    double DrainPerSecond,
    double EndToEndPerSecond,
    double LatencyP50Milliseconds,
    double LatencyP99Milliseconds,
    double DrainCpuMicrosecondsPerJob)
{
    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("peer", Peer);
            json.WriteNumber("jobs", Jobs);
            json.WriteNumber("workers", Workers);
            // Same precision as the peer's F0 / F2 formatting, so lines from both sides read alike.
            json.WriteNumber("enqueue_per_s", Math.Round(EnqueuePerSecond));
            json.WriteNumber("drain_per_s", Math.Round(DrainPerSecond));
            json.WriteNumber("end_to_end_per_s", Math.Round(EndToEndPerSecond));
            json.WriteNumber("latency_ms_p50", Math.Round(LatencyP50Milliseconds, 2));
            json.WriteNumber("latency_ms_p99", Math.Round(LatencyP99Milliseconds, 2));
            // Ours only: this process's CPU (all threads, user + system) during the drain, per job; the server's is not in it.
            json.WriteNumber("drain_cpu_us_per_job", Math.Round(DrainCpuMicrosecondsPerJob));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
