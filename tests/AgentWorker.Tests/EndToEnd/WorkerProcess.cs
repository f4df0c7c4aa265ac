using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using AgentWorker.Testing;

namespace AgentWorker.Tests.EndToEnd;

/// <summary>A real `agent-worker` process started from the build output, with its output kept for failure messages.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private WorkerProcess(Process process) => _process = process;

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public string Output => string.Join('\n', _output);

    public static WorkerProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        StartFrom(Path.Combine(AppContext.BaseDirectory, "agent-worker"), environment, args);

    /// <summary>Starts the worker from <paramref name="executable"/>, e.g. a copy of the build output installed elsewhere.</summary>
    public static WorkerProcess StartFrom(string executable, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        Launch(executable, null, environment, args);

    /// <summary>Starts the worker in <paramref name="workingDirectory"/>, where relative paths it is given end up.</summary>
    public static WorkerProcess StartIn(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        Launch(Path.Combine(AppContext.BaseDirectory, "agent-worker"), workingDirectory, environment, args);

    private static WorkerProcess Launch(string executable, string? workingDirectory, IReadOnlyDictionary<string, string> environment, string[] args)
    {
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["LOG_FORMAT"] = "json";
        // The test script exports server URLs for the backend suites; a worker picks its backend only from what a test gives it.
        foreach (var inherited in new[] { "POSTGRES_URL", "POSTGRES_DSN", "REDIS_URL", "MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_SECURE" })
            start.Environment.Remove(inherited);
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        var worker = new WorkerProcess(Process.Start(start)!);
        worker._process.OutputDataReceived += (_, e) => { if (e.Data is not null) worker._output.Enqueue(e.Data); };
        worker._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) worker._output.Enqueue(e.Data); };
        worker._process.BeginOutputReadLine();
        worker._process.BeginErrorReadLine();
        return worker;
    }

    public static int FreePort() => LoopbackPort.Free();

    public static HttpClient Client(int port, string? apiKey)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        if (apiKey is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    public async Task WaitReadyAsync(HttpClient client) =>
        await Eventually.UntilAsync(async () =>
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"worker exited with {_process.ExitCode}:\n{Output}");
            try
            {
                return (await client.GetAsync("/ready")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, ok => ok, TimeSpan.FromSeconds(30), "worker /ready");

    /// <summary>kill -9: the worker gets no chance to clean up.</summary>
    public void KillHard() => _process.Kill();

    public void Terminate() => Process.Start("kill", ["-TERM", Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();

    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        await _process.WaitForExitAsync().WaitAsync(deadline);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
