#!/usr/bin/env bash
# One command for every queue benchmark: starts a throwaway Redis and PostgreSQL the way scripts/test.sh does,
# runs our no-op job benchmark on SQLite, Redis and PostgreSQL (with --slots slots and with 1) and the peers'
# (../shared/bench/peers/run-peers.sh: BullMQ, Hangfire InMemory/Redis/PostgreSql) against the same servers,
# alternating, --repeat times, each round also timing the sandbox, the clone cache and the published binary's start;
# then the deep-backlog run per backend. Writes docs/benchmarks.md (medians, ratios, targets) and
# docs/benchmarks.jsonl (every raw line); bench/results/ keeps the latest summary lines too.
#
# usage: bench/run.sh [--jobs N] [--slots C] [--repeat R] [--scale-small N] [--scale-large N] [--no-scale]
#                     [--peers DIR] [--data-dir DIR]
#   --jobs N         no-op jobs per throughput run, ours and the peers' (default 20000; our 1-slot runs take N/4)
#   --slots C        our concurrent workers in the main runs (default 50, BullMQ's concurrency; Hangfire runs 20)
#   --repeat R       runs of each measure (default 3); the report takes medians
#   --scale-small N, --scale-large N   backlogs compared by the deep-backlog run (default 1000 and 1000000;
#                    a smaller --scale-large makes a quick run)
#   --no-scale       skip the deep-backlog run
#   --peers DIR      the peer benchmarks (default ../shared/bench/peers next to the repository)
#   --data-dir DIR   where the SQLite files go (default the temp directory): the disk measured
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
jobs=20000; slots=50; repeat=3; scale_small=1000; scale_large=1000000; scale=true
peers="$repo/../shared/bench/peers"; data_dir="${TMPDIR:-/tmp}"

usage_error() { echo "run.sh: $1" >&2; exit 2; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 must be a positive whole number, got '$2'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs|--slots|--repeat|--scale-small|--scale-large|--peers|--data-dir) [ $# -ge 2 ] || usage_error "$1 needs a value";;&
    --jobs) positive "$1" "$2"; jobs="$2"; shift 2;;
    --slots) positive "$1" "$2"; slots="$2"; shift 2;;
    --repeat) positive "$1" "$2"; repeat="$2"; shift 2;;
    --scale-small) positive "$1" "$2"; scale_small="$2"; shift 2;;
    --scale-large) positive "$1" "$2"; scale_large="$2"; shift 2;;
    --no-scale) scale=false; shift;;
    --peers) peers="$2"; shift 2;;
    --data-dir) [ -d "$2" ] || usage_error "--data-dir '$2' is not a directory"; data_dir="$2"; shift 2;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) usage_error "unknown argument '$1'";;
  esac
done
[ -f "$peers/run-peers.sh" ] || usage_error "no run-peers.sh in '$peers' (pass --peers DIR)"
[ "$scale_small" -lt "$scale_large" ] || usage_error "--scale-small ($scale_small) must be below --scale-large ($scale_large)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || usage_error "the BullMQ peer needs node and npm on PATH"

# The servers, exactly as the tests get them: scripts/services/NAME.sh installs and starts one on a random loopback
# port with throwaway data, exports its URL and registers its removal in `cleanups`. Only the two the queues need.
# shellcheck source=scripts/apt-install.sh
source scripts/apt-install.sh
cleanups=()
trap 'for c in "${cleanups[@]}"; do eval "$c" || true; done' EXIT
for service in scripts/services/redis.sh scripts/services/postgres.sh; do
  # shellcheck source=/dev/null
  source "$service"
done
: "${REDIS_URL:?scripts/services did not start Redis}" "${POSTGRES_URL:?scripts/services did not start PostgreSQL}"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
work="$(mktemp -d)"
cleanups+=("rm -rf '$work'")
# The shared peers directory may be read-only, and building or installing the peers writes next to them.
cp -R "$peers/." "$work/peers"
chmod -R u+w "$work/peers"

echo "run.sh: building" >&2
dotnet build bench/AgentWorker.Bench -c Release -nologo -v q >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
# The apphost, not `dotnet …dll`: the startup bench runs its own executable as the empty-program floor.
ours=("bench/AgentWorker.Bench/bin/Release/net10.0/AgentWorker.Bench")
# The start-up figures are those of what users run: the published, ReadyToRun-compiled binary.
dotnet publish src/AgentWorker -c Release -nologo -v q -o "$work/publish" >"$work/publish.log" 2>&1 || { cat "$work/publish.log" >&2; exit 1; }
redis_hostport="${REDIS_URL#redis://}"
# Hangfire.PostgreSql takes Npgsql's key=value form, not the URL.
pg_hostport="${POSTGRES_URL#postgresql://*@}"; pg_hostport="${pg_hostport%%/*}"
pg_keyvalue="Host=${pg_hostport%:*};Port=${pg_hostport##*:};Username=postgres;Database=${POSTGRES_URL##*/}"

raw="$work/raw.jsonl"
# What the report needs to say where and how the figures were taken.
redis_version="$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
pg_version="$("$pg_bin/postgres" --version | awk '{print $3}')"
pg_settings="$("$pg_bin/psql" "$POSTGRES_URL" -At -c \
  "select string_agg(name || '=' || setting, ', ' order by name) from pg_settings where name in ('fsync', 'synchronous_commit', 'shared_buffers')")"
printf '{"bench":"env","peer":"run","date":"%s","dotnet":"%s","redis":"%s","postgres":"%s","postgres_settings":"%s","node":"%s","jobs":%d,"slots":%d,"repeat":%d}\n' \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(dotnet --version)" "$redis_version" "$pg_version" "$pg_settings" "$(node --version)" \
  "$jobs" "$slots" "$repeat" >"$raw"

# Alternating ours and the peers, so a slow stretch of the machine (another tenant, a checkpoint) hits both alike.
# Only JSON lines go to the raw file: the peer script also prints npm/dotnet progress and "skipped" notes.
for ((run = 1; run <= repeat; run++)); do
  for backend in sqlite redis postgres; do
    echo "run.sh: run $run/$repeat: $backend, $slots slots, then 1" >&2
    "${ours[@]}" "$backend" --jobs "$jobs" --workers "$slots" --data-dir "$data_dir" | tee -a "$raw"
    # One slot drains one job at a time whatever N is; a quarter of the jobs (as the peer script gives Hangfire's
    # durable storages) gives the same rates in a quarter of the time.
    "${ours[@]}" "$backend" --jobs "$(( (jobs + 3) / 4 ))" --workers 1 --data-dir "$data_dir" | tee -a "$raw"
  done
  echo "run.sh: run $run/$repeat: sandbox, clone, startup" >&2
  "${ours[@]}" sandbox | tee -a "$raw"
  "${ours[@]}" egress | tee -a "$raw"
  "${ours[@]}" gateway | tee -a "$raw"
  # On tmpfs where there is one: writing 3,000 files to a disk other tenants keep busy swamps what git itself does.
  "${ours[@]}" clone --runs 5 --dir "$([ -d /dev/shm ] && echo /dev/shm || echo "$data_dir")" | tee -a "$raw"
  "${ours[@]}" startup --binary "$work/publish/agent-worker" | tee -a "$raw"
  echo "run.sh: run $run/$repeat: peers" >&2
  bash "$work/peers/run-peers.sh" --jobs "$jobs" --redis "$redis_hostport" --postgres "$pg_keyvalue" | { grep '^{' || true; } | tee -a "$raw"
done

if $scale; then
  for backend in sqlite redis postgres; do
    echo "run.sh: deep backlog: $backend, $scale_small vs $scale_large queued" >&2
    "${ours[@]}" scale --backend "$backend" --small "$scale_small" --large "$scale_large" --data-dir "$data_dir" | tee -a "$raw"
  done
fi

mkdir -p bench/results docs
"${ours[@]}" summarize <"$raw" | tee bench/results/latest.jsonl
cp "$raw" bench/results/latest-raw.jsonl
cp "$raw" docs/benchmarks.jsonl
"${ours[@]}" report <"$raw" >docs/benchmarks.md
echo "run.sh: wrote docs/benchmarks.md and docs/benchmarks.jsonl" >&2
