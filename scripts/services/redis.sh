# shellcheck shell=bash
# Sourced by scripts/test.sh: a throwaway redis-server for the Redis queue tests, exported as REDIS_URL.
# Its own random port on loopback, no persistence, data in a temp dir: a system redis (the distro
# package may start one on 6379) or another run's server is never touched.
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || apt_install redis-server
redis_dir=$(mktemp -d)
cleanups+=("rm -rf '$redis_dir'")
redis_port=
# A port taken meanwhile by someone else only costs another try.
for _ in 1 2 3 4 5; do
  port=$(shuf -i 20000-60999 -n 1)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$redis_dir/redis-$port.pid" --dir "$redis_dir" --logfile "$redis_dir/redis-$port.log" || continue
  for _ in $(seq 1 50); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && [ -s "$redis_dir/redis-$port.pid" ]; then
    redis_port=$port
    break
  fi
  kill "$(cat "$redis_dir/redis-$port.pid" 2>/dev/null)" 2>/dev/null || true
done
if [ -z "$redis_port" ]; then
  echo "test.sh: could not start redis-server on a free loopback port" >&2
  cat "$redis_dir"/*.log >&2 2>/dev/null || true
  exit 1
fi
# Runs before the rm above: cleanups run in order, and this one is put first.
cleanups=("redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || kill \"\$(cat '$redis_dir/redis-$redis_port.pid')\"" "${cleanups[@]}")
export REDIS_URL="redis://127.0.0.1:$redis_port"
echo "test.sh: redis-server $(redis-server --version | awk '{print $3}') on $REDIS_URL"
