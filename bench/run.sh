#!/usr/bin/env bash
# Runs our SQLite queue benchmark and the Hangfire peer side by side, alternating, and prints every raw
# JSON line and then one median line per peer (ours with ratios against Hangfire InMemory).
# Compare the ratios of one run; absolute numbers move with the machine (see bench/README.md).
#
# usage: bench/run.sh [--jobs N] [--workers C] [--repeat R] [--peers DIR] [--postgres CONN] [--redis HOST:PORT]
#   --jobs N     jobs per run, both sides (default 20000)
#   --workers C  our worker loops (default 20; the peer script always runs Hangfire with 20)
#   --repeat R   runs per side (default 3); the summary takes the median of each field
#   --peers DIR  the peer benchmarks (default ../shared/bench/peers next to the repository)
#   --postgres CONN, --redis HOST:PORT  passed to the peer script, which then adds the durable
#                Hangfire storages (with N/4 jobs); without them only Hangfire InMemory runs
# Writes bench/results/latest.jsonl (summary lines) and bench/results/latest-raw.jsonl (every run).
set -euo pipefail
bench="$(cd "$(dirname "$0")" && pwd)"
jobs=20000; workers=20; repeat=3; peers="$bench/../../shared/bench/peers"; servers=()

usage_error() { echo "run.sh: $1" >&2; exit 2; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 must be a positive whole number, got '$2'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs|--workers|--repeat|--peers|--postgres|--redis) [ $# -ge 2 ] || usage_error "$1 needs a value";;&
    --jobs) positive "$1" "$2"; jobs="$2"; shift 2;;
    --workers) positive "$1" "$2"; workers="$2"; shift 2;;
    --repeat) positive "$1" "$2"; repeat="$2"; shift 2;;
    --peers) peers="$2"; shift 2;;
    --postgres|--redis) servers+=("$1" "$2"); shift 2;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) usage_error "unknown argument '$1'";;
  esac
done
[ -f "$peers/run-peers.sh" ] || usage_error "no run-peers.sh in '$peers' (pass --peers DIR)"
[ "$workers" = 20 ] || echo "run.sh: note: --workers $workers, but the peer script runs Hangfire with 20 workers" >&2

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The shared peers directory may be read-only (CI), and building the peer writes bin/ and obj/ next to it.
cp -R "$peers/." "$work/peers"
chmod -R u+w "$work/peers"

dotnet build "$bench/AgentWorker.Bench" -c Release -nologo -v q >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
ours=(dotnet "$bench/AgentWorker.Bench/bin/Release/net10.0/AgentWorker.Bench.dll")

# Alternating, so a slow stretch of the machine (another tenant, a checkpoint) hits both sides alike.
raw="$work/raw.jsonl"
: >"$raw"
for ((run = 1; run <= repeat; run++)); do
  echo "run.sh: run $run/$repeat" >&2
  "${ours[@]}" sqlite --jobs "$jobs" --workers "$workers" | tee -a "$raw"
  # Only the result lines: the peer script also prints progress and "skipped" notes.
  bash "$work/peers/run-peers.sh" --only hangfire --jobs "$jobs" "${servers[@]}" | grep '^{' | tee -a "$raw"
done

summary="$work/summary.jsonl"
"${ours[@]}" summarize <"$raw" >"$summary"
echo "run.sh: medians of $repeat run(s):" >&2
cat "$summary"

mkdir -p "$bench/results"
cp "$summary" "$bench/results/latest.jsonl"
cp "$raw" "$bench/results/latest-raw.jsonl"
