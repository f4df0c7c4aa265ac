#!/usr/bin/env bash
# Bounded soak run (docs/operations.md, "Soak test"); not part of CI.
# Starts `agent-worker serve` on a random loopback port with a throwaway SQLite data dir, keeps its queue fed with
# jobs of a built-in agent against a small local git repository, and every interval prints one JSON line with the
# worker's RSS, open file descriptors, threads, child processes and throughput; at the end one summary line that says
# whether RSS and throughput stayed flat. Everything stays on this machine: loopback HTTP, a local repository, an
# offline agent. Stops by itself after --minutes.
#
#   scripts/soak.sh [--minutes N] [--interval SECONDS] [--workers N] [--agent ID] [--binary PATH] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 interval=15 workers=2 agent=ssot_auditor binary="" out=""
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --agent) agent=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "soak.sh: unknown option $1" >&2; usage ;;
  esac
done
for n in "$minutes" "$interval" "$workers"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --minutes, --interval and --workers take a positive whole number" >&2; exit 2; }
done
for tool in curl git awk; do command -v "$tool" >/dev/null || { echo "soak.sh: needs $tool" >&2; exit 2; }; done

if [ -z "$binary" ]; then
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet build src/AgentWorker -c Release -nologo -v q >&2
  binary=src/AgentWorker/bin/Release/net10.0/agent-worker
fi
[ -x "$binary" ] || { echo "soak.sh: $binary is not an executable" >&2; exit 2; }

dir=$(mktemp -d /tmp/agent-worker-soak.XXXXXX)
# A root worker runs agents as an unprivileged user, who must be able to reach the workspaces under it.
chmod 755 "$dir"
samples="$dir/samples.jsonl"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# A small repository with something for the auditors to find, like the demo's.
repo="$dir/repo"
mkdir -p "$repo/a" "$repo/b"
printf 'MAX_RETRIES = 3\nTIMEOUT = 30\nHOST = "db"\nPORT = 5432\n' | tee "$repo/a/settings.py" > "$repo/b/settings.py"
printf '{"dependencies": {"left-pad": "*"}}\n' > "$repo/package.json"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=soak -c user.email=soak@example.invalid commit -qm soak

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-60000 -n 1)
base="http://127.0.0.1:$port"
AGENT_WORKER_DATA="$dir/data" WORK_DIR="$dir/work" HOST=127.0.0.1 PORT="$port" WORKERS="$workers" \
  RATE_LIMIT_PER_MINUTE=0 MAX_QUEUE_DEPTH=0 LOG_FORMAT=json LOG_LEVEL=warn \
  "$binary" serve > "$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  curl -fs "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "soak.sh: the worker exited:" >&2; cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.2
done
curl -fs "$base/ready" >/dev/null || { echo "soak.sh: the worker did not get ready" >&2; exit 1; }

field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | head -n 1 | cut -d: -f2; }
status_kb() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$pid/status"; }
job="{\"agent\":\"$agent\",\"repo\":{\"url\":\"$repo\"},\"maxAttempts\":1}"
# Enough waiting jobs that no slot ever idles, few enough that the queue does not grow without bound.
target=$((workers * 2 + 2))

start=$(date +%s)
end=$((start + minutes * 60))
next_sample=$((start + interval))
last_done=0 last_time=$start submitted=0 rejected=0
echo "soak.sh: worker pid $pid on $base, $workers slot(s), agent $agent, $minutes min, a sample every ${interval}s" >&2
while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$pid" 2>/dev/null || { echo "soak.sh: the worker died:" >&2; tail -n 20 "$dir/serve.log" >&2; exit 1; }
  health=$(curl -fs "$base/health" || true)
  depth=$(field queueDepth "$health"); depth=${depth:-0}
  while [ "$depth" -lt "$target" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/v1/jobs" -H 'Content-Type: application/json' -d "$job")
    if [ "$code" = 202 ]; then submitted=$((submitted + 1)); else rejected=$((rejected + 1)); fi
    depth=$((depth + 1))
  done
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then
    succeeded=$(field succeeded "$health"); failed=$(field failed "$health"); dead=$(field dead "$health")
    done_now=$(( ${succeeded:-0} + ${failed:-0} + ${dead:-0} ))
    per_min=$(awk -v d=$((done_now - last_done)) -v t=$((now - last_time)) 'BEGIN { printf "%.1f", (t > 0 ? d * 60 / t : 0) }')
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    children=$(pgrep -c -P "$pid" || true)
    printf '{"elapsedSeconds":%d,"rssKb":%s,"peakRssKb":%s,"fds":%s,"threads":%s,"children":%s,"queueDepth":%s,"succeeded":%s,"failed":%s,"dead":%s,"jobsPerMinute":%s,"submitted":%d,"rejected":%d}\n' \
      $((now - start)) "$(status_kb VmRSS)" "$(status_kb VmHWM)" "$fds" "$(status_kb Threads)" "$children" "$depth" \
      "${succeeded:-0}" "${failed:-0}" "${dead:-0}" "$per_min" "$submitted" "$rejected" | tee -a "$samples"
    last_done=$done_now last_time=$now next_sample=$((next_sample + interval))
  fi
  sleep 0.5
done

kill -TERM "$pid"
exit_code=0
wait "$pid" || exit_code=$?
pid=""
[ -z "$out" ] || cp "$samples" "$out"

# Flat: the last quarter's mean within 20 % of the second quarter's (the first quarter is warm-up: JIT, pools, caches).
awk -v exit_code="$exit_code" '
  function num(key,   m) { return match($0, "\"" key "\":[0-9.]+") ? substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0 : 0 }
  { n++; rss[n] = num("rssKb"); fds[n] = num("fds"); rate[n] = num("jobsPerMinute"); peak = num("peakRssKb"); ok = num("succeeded"); bad = num("failed") + num("dead") }
  function mean(a, from, to,   s, i) { s = 0; for (i = from; i <= to; i++) s += a[i]; return to >= from ? s / (to - from + 1) : 0 }
  END {
    if (n < 4) { print "{\"summary\":\"too few samples: run longer or sample more often\"}"; exit 1 }
    q = int(n / 4); early_from = q + 1; early_to = 2 * q; late_from = n - q + 1
    rss_early = mean(rss, early_from, early_to); rss_late = mean(rss, late_from, n)
    rate_early = mean(rate, early_from, early_to); rate_late = mean(rate, late_from, n)
    rss_change = rss_early > 0 ? (rss_late - rss_early) * 100 / rss_early : 0
    rate_change = rate_early > 0 ? (rate_late - rate_early) * 100 / rate_early : 0
    flat = (rss_change < 20 && rss_change > -20 && rate_change < 20 && rate_change > -20) ? "true" : "false"
    printf "{\"summary\":true,\"samples\":%d,\"rssKbSecondQuarter\":%.0f,\"rssKbLastQuarter\":%.0f,\"rssChangePercent\":%.1f,\"peakRssKb\":%d,", n, rss_early, rss_late, rss_change, peak
    printf "\"fdsFirst\":%d,\"fdsLast\":%d,\"jobsPerMinuteSecondQuarter\":%.1f,\"jobsPerMinuteLastQuarter\":%.1f,\"throughputChangePercent\":%.1f,", fds[1], fds[n], rate_early, rate_late, rate_change
    printf "\"succeeded\":%d,\"failedOrDead\":%d,\"workerExitCode\":%d,\"flat\":%s}\n", ok, bad, exit_code, flat
  }' "$samples"
