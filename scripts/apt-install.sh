# shellcheck shell=bash
# Sourced by scripts/test.sh and bench/run.sh: apt_install PACKAGE... installs what is missing, running
# `apt-get update` at most once per run (the servers under scripts/services/ call it too).
apt_updated=false
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$(basename "$0"): missing $*; install them (apt-get install $*) or run as root" >&2
    exit 1
  fi
  echo "$(basename "$0"): installing $*"
  $apt_updated || { apt-get update -qq; apt_updated=true; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
