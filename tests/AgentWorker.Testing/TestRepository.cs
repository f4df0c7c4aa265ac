using System.Diagnostics;

namespace AgentWorker.Testing;

/// <summary>A real git repository on disk, built with the git binary, used as a job's remote.</summary>
public sealed class TestRepository : IDisposable
{
    private readonly TempDirectory _dir = new("aw-repo");

    private TestRepository() { }

    public string Path => _dir.Path;

    public static TestRepository Create(IReadOnlyDictionary<string, string> files, string branch = "main")
    {
        var repo = new TestRepository();
        Git(repo.Path, "init", "--quiet", "--initial-branch", branch);
        repo.Commit(files, "initial");
        return repo;
    }

    /// <summary>Writes the files and commits them; returns the new commit id.</summary>
    public string Commit(IReadOnlyDictionary<string, string> files, string message)
    {
        foreach (var (name, content) in files)
        {
            var file = System.IO.Path.Combine(Path, name);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
            File.WriteAllText(file, content);
        }
        Git(Path, "add", "--all");
        Git(Path, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "--allow-empty", "-m", message);
        return Git(Path, "rev-parse", "HEAD").Trim();
    }

    public void CreateBranch(string name) => Git(Path, "branch", name);

    public void Checkout(string name) => Git(Path, "checkout", "--quiet", name);

    public static string Git(string directory, params string[] args)
    {
        var start = new ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        // A test that sets a GIT_* variable in this process (a hostile template, say) must not reach the git of tests running beside it.
        foreach (var name in start.Environment.Keys.Where(name => name.StartsWith("GIT_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);
        using var git = Process.Start(start)!;
        var stdout = git.StandardOutput.ReadToEndAsync();
        var stderr = git.StandardError.ReadToEnd();
        git.WaitForExit();
        if (git.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed: {stderr}");
        return stdout.Result;
    }

    public void Dispose() => _dir.Dispose();
}
