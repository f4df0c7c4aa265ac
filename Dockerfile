# syntax=docker/dockerfile:1
# The agent-worker image (docs/operations.md, "Container"). Stage 1 publishes with the SDK; stage 2 is the ASP.NET Core
# runtime plus what jobs need at run time: git for clones, bubblewrap and libseccomp for the agent sandbox.
# Build from the repository root: docker build -t agent-worker .

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props README.md ./
COPY src/ src/
RUN dotnet publish src/AgentWorker/AgentWorker.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap libseccomp2 util-linux ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# The worker never runs as root: bubblewrap then builds the sandbox from an unprivileged user namespace.
RUN groupadd --system --gid 10001 agent-worker \
 && useradd --system --uid 10001 --gid agent-worker --home-dir /var/lib/agent-worker --create-home --shell /usr/sbin/nologin agent-worker
COPY --from=build /app /opt/agent-worker
ENV AGENT_WORKER_DATA=/var/lib/agent-worker/data \
    WORK_DIR=/var/lib/agent-worker/work \
    PORT=3000 \
    LOG_FORMAT=json \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
USER agent-worker
WORKDIR /var/lib/agent-worker
VOLUME ["/var/lib/agent-worker"]
EXPOSE 3000
# /ready answers 200 while the queue backend answers and the worker is not shutting down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/ready" >/dev/null || exit 1
# SIGTERM (docker stop) starts the graceful shutdown; give `docker stop -t` at least SHUTDOWN_GRACE_SECONDS + 15.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/agent-worker/agent-worker"]
CMD ["serve"]
