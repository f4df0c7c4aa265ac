using AgentWorker.Core.Agents.BuiltIn;
using AgentWorker.Core.Egress;
using AgentWorker.Core.Gateway;
using AgentWorker.Core.Jobs;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace AgentWorker.Core.Agents;

/// <summary>The agents a worker can run: the built-ins plus the entries of the registry file (AGENTS_FILE), which may override them.</summary>
public sealed class AgentRegistry
{
    private readonly Dictionary<string, AgentDefinition> _agents;

    private AgentRegistry(Dictionary<string, AgentDefinition> agents) => _agents = agents;

    public IReadOnlyCollection<AgentDefinition> All => _agents.Values;

    public AgentDefinition? Find(string id) => _agents.GetValueOrDefault(id);

    /// <summary>
    /// Builds the registry. Built-ins run as <paramref name="selfCommand"/> <c>agent exec ID</c>, a child
    /// process like any other agent. Throws <see cref="AgentRegistryException"/> naming the file and entry on bad input.
    /// </summary>
    /// <param name="file">The registry file (AGENTS_FILE), or null for the built-ins only.</param>
    /// <param name="selfCommand">How to run this binary (built-ins run as <c>agent exec ID</c>).</param>
    /// <param name="llmVariables">The llm agent's endpoint (its gateway's upstream) and model: the model is given to that agent only.</param>
    /// <param name="jobsMayAddHosts">Jobs may name hosts their agent's allow list does not (<c>EGRESS_JOBS_MAY_ADD_HOSTS</c>).</param>
    public static AgentRegistry Load(string? file, IReadOnlyList<string> selfCommand, IReadOnlyDictionary<string, string>? llmVariables = null, bool jobsMayAddHosts = false)
    {
        var agents = new Dictionary<string, AgentDefinition>(StringComparer.Ordinal);
        var llmVendor = new ModelVendor
        {
            Name = LlmReviewer.AgentId,
            BaseUrlVariable = LlmReviewer.BaseUrlVariable,
            Upstream = new Uri(llmVariables?.GetValueOrDefault(LlmReviewer.BaseUrlVariable) ?? LlmReviewer.DefaultBaseUrl),
            KeyVariable = LlmReviewer.ApiKeyVariable,
        };
        foreach (var agent in BuiltInAgents.All.Append(BuiltInAgents.Llm))
        {
            var llm = agent == BuiltInAgents.Llm;
            agents[agent.Id] = new AgentDefinition
            {
                Id = agent.Id,
                Description = agent.Description,
                Command = [.. selfCommand, "agent", "exec", agent.Id, "--workspace", "{workspace}", "--prompt", "{prompt}"],
                BuiltIn = true,
                // It reaches its endpoint through the gateway, and nothing else; the offline agents get no network unless a job asks.
                Network = llm ? NetworkMode.Allowlist : null,
                Gateway = llm ? [llmVendor] : [],
                JobsMayAddHosts = jobsMayAddHosts,
                Variables = llm
                    ? (llmVariables ?? new Dictionary<string, string>()).Where(v => v.Key != LlmReviewer.BaseUrlVariable).ToDictionary()
                    : new Dictionary<string, string>(),
            };
        }
        if (file is not null)
        {
            foreach (var agent in ReadFile(file))
                agents[agent.Id] = agent with { JobsMayAddHosts = jobsMayAddHosts };
        }
        return new AgentRegistry(agents);
    }

    private static List<AgentDefinition> ReadFile(string file)
    {
        RegistryFile? parsed;
        try
        {
            var yaml = File.ReadAllText(file);
            if (YamlSafety.FindUnsafe(yaml) is { } unsafeYaml)
                throw new AgentRegistryException($"agents file {file}: line {unsafeYaml.Line}: {unsafeYaml.Problem}");
            parsed = new DeserializerBuilder()
                .WithNamingConvention(CamelCaseNamingConvention.Instance)
                .Build()
                .Deserialize<RegistryFile?>(yaml);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AgentRegistryException($"agents file {file}: cannot read it: {e.Message}");
        }
        catch (YamlException e)
        {
            throw new AgentRegistryException($"agents file {file}: line {e.Start.Line}: {e.InnerException?.Message ?? e.Message}");
        }
        var result = new List<AgentDefinition>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (entry, index) in (parsed?.Agents ?? []).Select((e, i) => (e, i)))
        {
            var where = $"agents file {file}: agents[{index}]";
            if (entry is null)
                throw new AgentRegistryException($"{where}: must be a map with at least id and command");
            if (string.IsNullOrWhiteSpace(entry.Id) || !JobRequestParser.IsValidId(entry.Id))
                throw new AgentRegistryException($"{where}.id: required; {JobRequestParser.IdRule}");
            if (!seen.Add(entry.Id))
                throw new AgentRegistryException($"{where}.id: '{entry.Id}' is listed twice");
            if (entry.Command is not { Count: > 0 } || entry.Command.Any(string.IsNullOrEmpty))
                throw new AgentRegistryException($"{where}.command: required, a non-empty list of arguments");
            if (entry.Env is { } env && env.Any(string.IsNullOrWhiteSpace))
                throw new AgentRegistryException($"{where}.env: a list of environment variable names, none empty");
            if (entry.Variables is { } variables && variables.Keys.Any(name => string.IsNullOrWhiteSpace(name) || name.Contains('=', StringComparison.Ordinal)))
                throw new AgentRegistryException($"{where}.variables: a map of environment variable names (no '=') to values");
            if (entry.Stdin is not (null or "none" or "prompt"))
                throw new AgentRegistryException($"{where}.stdin: must be prompt (the job's prompt on standard input) or none");
            if (entry.TimeoutSeconds is <= 0)
                throw new AgentRegistryException($"{where}.timeoutSeconds: must be a positive number of seconds");
            NetworkMode? network = null;
            if (entry.Network is not null)
            {
                if (!JobRequestParser.TryParseNetwork(entry.Network, out var parsedNetwork))
                    throw new AgentRegistryException($"{where}.network: {JobRequestParser.NetworkRule}");
                network = parsedNetwork;
            }
            var allowHosts = ReadAllowHosts(entry.AllowHosts, where);
            var gateway = GatewayEntries.Read(entry.Gateway, $"{where}.gateway");
            // With the gateway the vendor is reached without the proxy; an empty list then refuses (and logs) everything else.
            if (network == NetworkMode.Allowlist && allowHosts.Count == 0 && gateway.Count == 0)
                throw new AgentRegistryException($"{where}.allowHosts: network allowlist needs a non-empty list of hosts (host, *.domain, optional :port), or a gateway");
            if (network != NetworkMode.Allowlist && entry.AllowHosts is not null)
                throw new AgentRegistryException($"{where}.allowHosts: only used with network: allowlist");
            if (entry.Limits is { } limits && (limits.MemoryMb is <= 0 || limits.Pids is <= 0 || limits.TmpMb is <= 0
                || limits.Cpus is { } cpus && !(double.IsFinite(cpus) && cpus > 0)))
                throw new AgentRegistryException($"{where}.limits: memoryMb, pids, cpus and tmpMb must be positive");
            result.Add(new AgentDefinition
            {
                Id = entry.Id,
                Command = entry.Command,
                Description = entry.Description,
                TimeoutSeconds = entry.TimeoutSeconds,
                Env = [.. entry.Env?.OfType<string>() ?? []],
                Variables = entry.Variables?.ToDictionary(v => v.Key, v => v.Value ?? "", StringComparer.Ordinal) ?? new Dictionary<string, string>(),
                PromptOnStdin = entry.Stdin == "prompt",
                Network = network,
                AllowHosts = allowHosts,
                Limits = entry.Limits is { } l ? new AgentLimits(l.MemoryMb, l.Pids, l.Cpus, l.TmpMb) : null,
                Gateway = gateway,
                Budget = GatewayEntries.ReadBudget(entry.Budget, $"{where}.budget"),
            });
        }
        return result;
    }

    private static List<HostPattern> ReadAllowHosts(List<string?>? entries, string where)
    {
        var patterns = new List<HostPattern>();
        foreach (var (entry, index) in (entries ?? []).Select((e, i) => (e, i)))
        {
            try
            {
                patterns.Add(HostPattern.Parse(entry ?? ""));
            }
            catch (FormatException e)
            {
                throw new AgentRegistryException($"{where}.allowHosts[{index}]: {e.Message}");
            }
        }
        return patterns;
    }

    private sealed class RegistryFile
    {
        public List<RegistryEntry?>? Agents { get; set; }
    }

    private sealed class RegistryEntry
    {
        public string? Id { get; set; }
        public List<string>? Command { get; set; }
        public string? Description { get; set; }
        public int? TimeoutSeconds { get; set; }
        public List<string?>? Env { get; set; }
        public Dictionary<string, string?>? Variables { get; set; }
        public string? Stdin { get; set; }
        public string? Network { get; set; }
        public List<string?>? AllowHosts { get; set; }
        public RegistryLimits? Limits { get; set; }
        public List<object?>? Gateway { get; set; }
        public Dictionary<string, object?>? Budget { get; set; }
    }

    private sealed class RegistryLimits
    {
        public int? MemoryMb { get; set; }
        public int? Pids { get; set; }
        public double? Cpus { get; set; }
        public int? TmpMb { get; set; }
    }
}

/// <summary>The registry file is unreadable or invalid; the message names the file and the entry.</summary>
public sealed class AgentRegistryException(string message) : Exception(message);
