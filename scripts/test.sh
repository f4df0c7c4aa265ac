#!/usr/bin/env bash
# The one test command (README "Run the tests"; .ci/run calls it).
# Installs what the tests need with apt when it is missing, builds once, runs every test project,
# and ends with a "N passed, N failed, N skipped" line. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/apt-install.sh
source scripts/apt-install.sh

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing+=(libseccomp2)
# The dashboard's browser tests drive Debian's chromium through Playwright; Playwright's own browser download is never used.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# PackagingTests verifies deploy/agent-worker.service with it.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# Servers the tests need: each scripts/services/NAME.sh installs and starts one (on loopback, random
# port, throwaway data), exports its URL, and adds a command to `cleanups`, run when this script exits.
cleanups=()
trap 'for c in "${cleanups[@]}"; do eval "$c" || true; done' EXIT
for service in scripts/services/*.sh; do
  [ -e "$service" ] || continue
  # shellcheck source=/dev/null
  source "$service"
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build AgentWorker.slnx -c Release -nologo -v q

log=$(mktemp)
cleanups+=("rm -f '$log'")
set +e
dotnet test AgentWorker.slnx -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# dotnet test prints one summary per test project; add them up into the line CI reads.
awk '/(Passed|Failed)!/ {
       for (i = 1; i <= NF; i++) {
         if ($i == "Failed:")  failed  += $(i + 1)
         if ($i == "Passed:")  passed  += $(i + 1)
         if ($i == "Skipped:") skipped += $(i + 1)
       }
     }
     END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped }' "$log"
exit "$status"
