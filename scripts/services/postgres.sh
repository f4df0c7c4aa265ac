# Sourced by scripts/test.sh: a throwaway PostgreSQL cluster for the PostgreSQL queue tests.
# initdb in a temp dir owned by the `postgres` system user (the server refuses to run as root), a random
# free loopback port, its unix socket in the same dir, trust auth on 127.0.0.1 only. The distro's own
# cluster (if the package started one on 5432) is neither used nor touched.

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  apt_install postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres

pg_dir=$(mktemp -d /tmp/agent-worker-pg.XXXXXX)
chown postgres: "$pg_dir"
# One entry, stop before removal, so the server never outlives the run; stopping a cluster that never
# started just fails quietly.
cleanups+=("runuser -u postgres -- '$pg_bin/pg_ctl' -D '$pg_dir/data' stop -m immediate >/dev/null 2>&1; rm -rf '$pg_dir'")
as_postgres() { runuser -u postgres -- "$@"; }

as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --auth-host=trust --no-sync -E UTF8 >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log" >&2; exit 1; }
# A port free at the time of asking; the server's own bind is the final check, so retry on a clash.
pg_port=
for _ in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || shuf -i 20000-60000 -n 1)
  if as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null 2>&1; then
    pg_port=$port
    break
  fi
done
if [ -z "$pg_port" ]; then
  echo "postgres.sh: the throwaway PostgreSQL cluster did not start" >&2
  cat "$pg_dir/server.log" >&2 || true
  exit 1
fi
for _ in $(seq 150); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
  sleep 0.2
done
"$pg_bin/pg_isready" -h 127.0.0.1 -p "$pg_port" >/dev/null || { echo "postgres.sh: server on port $pg_port not ready" >&2; exit 1; }
"$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres agent_worker_test
export POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/agent_worker_test"
echo "postgres.sh: PostgreSQL on 127.0.0.1:$pg_port ($pg_dir)"
