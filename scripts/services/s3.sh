# shellcheck shell=bash
# Sourced by scripts/test.sh: a throwaway S3-compatible server (s3rver, a pinned npm package) for the artifact tests,
# exported as MINIO_ENDPOINT / MINIO_ACCESS_KEY / MINIO_SECRET_KEY (s3rver's fixed S3RVER/S3RVER keys).
# The package is installed once into scripts/services/.cache (ignored by git) and reused; the server binds a random
# loopback port and keeps its objects in a temp dir removed at exit.
s3rver_version=3.7.1
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
s3_cache="$PWD/scripts/services/.cache/s3rver-$s3rver_version"
if [ ! -x "$s3_cache/node_modules/.bin/s3rver" ]; then
  mkdir -p "$s3_cache"
  echo '{"private":true}' >"$s3_cache/package.json"
  npm install --prefix "$s3_cache" --no-audit --no-fund --loglevel=error --save-exact "s3rver@$s3rver_version" >/dev/null \
    || { echo "s3.sh: npm install s3rver@$s3rver_version failed" >&2; exit 1; }
fi
s3_dir=$(mktemp -d /tmp/agent-worker-s3.XXXXXX)
cleanups+=("rm -rf '$s3_dir'")
s3_port=
# A port taken meanwhile by someone else only costs another try.
for _ in 1 2 3 4 5; do
  port=$(shuf -i 20000-60999 -n 1)
  "$s3_cache/node_modules/.bin/s3rver" -d "$s3_dir/data" -a 127.0.0.1 -p "$port" --silent >"$s3_dir/s3rver-$port.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    s3_port=$port
    break
  fi
  kill "$pid" 2>/dev/null || true
done
if [ -z "$s3_port" ]; then
  echo "s3.sh: s3rver did not start on a free loopback port" >&2
  cat "$s3_dir"/*.log >&2 2>/dev/null || true
  exit 1
fi
# Stopped before its data dir goes: cleanups run in order, and this one is put first.
cleanups=("kill $pid 2>/dev/null; wait $pid 2>/dev/null" "${cleanups[@]}")
export MINIO_ENDPOINT="127.0.0.1:$s3_port" MINIO_ACCESS_KEY=S3RVER MINIO_SECRET_KEY=S3RVER MINIO_SECURE=false
echo "s3.sh: s3rver $s3rver_version on http://$MINIO_ENDPOINT ($s3_dir)"
