#!/usr/bin/env bash
# A throwaway PostgreSQL and Redis on 127.0.0.1 for the integration tests (used by .ci/run).
#
#   .ci/services.sh start DIR   initdb + start PostgreSQL, start redis-server (free loopback ports,
#                               data under DIR), then write DIR/env with HISTO_RENN_PG_URL and
#                               HISTO_RENN_REDIS_URL (source it with `set -a; . DIR/env; set +a`)
#   .ci/services.sh stop DIR    stop both (whatever of them is running) and remove DIR
#
# Needs Debian's `postgresql` and `redis-server` packages. As root, PostgreSQL runs as the
# `postgres` user (initdb and postgres refuse to run as root).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
action=$1
dir=$2

PG_USER=dagster
PG_DB=dagster

pg_bindir() {
  # Debian keeps initdb and pg_ctl off PATH, in /usr/lib/postgresql/<major>/bin.
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$found" ] && command -v initdb >/dev/null 2>&1; then
    found=$(dirname "$(readlink -f "$(command -v initdb)")")
  fi
  [ -n "$found" ] || {
    echo "services.sh: PostgreSQL not found (apt-get install postgresql)" >&2
    return 1
  }
  echo "$found"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  command -v redis-server >/dev/null 2>&1 || {
    echo "services.sh: redis-server not found (apt-get install redis-server)" >&2
    return 1
  }
  local bindir pg_port redis_port password
  bindir=$(pg_bindir)
  mkdir -p "$dir/pg" "$dir/redis"
  chmod 711 "$dir" # the postgres user must reach $dir/pg, nothing more
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/pg"; fi
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  (umask 077 && echo "$password" >"$dir/pg/pwfile")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/pg/pwfile"; fi

  pg_port=$(free_port)
  as_postgres "$bindir/initdb" -D "$dir/pg/data" -U "$PG_USER" --pwfile="$dir/pg/pwfile" \
    --auth=scram-sha-256 -E UTF8 --no-instructions >"$dir/pg/initdb.log"
  as_postgres "$bindir/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgres.log" -w -t 60 start -o \
    "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
  PGPASSWORD=$password "$bindir/createdb" -h 127.0.0.1 -p "$pg_port" -U "$PG_USER" "$PG_DB"
  echo "services.sh: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$pg_port"

  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$dir/redis" --daemonize yes --pidfile "$dir/redis/redis.pid" \
    --logfile "$dir/redis/redis.log"
  for _ in $(seq 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.2
  done
  [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] || {
    echo "services.sh: redis-server did not answer on 127.0.0.1:$redis_port" >&2
    cat "$dir/redis/redis.log" >&2
    return 1
  }
  echo "services.sh: $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$redis_port"

  (
    umask 077
    cat >"$dir/env" <<EOF
HISTO_RENN_PG_URL=postgresql://$PG_USER:$password@127.0.0.1:$pg_port/$PG_DB
HISTO_RENN_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
  )
}

stop() {
  # Best effort on every part: stop is also what cleans up after a failed start.
  local pid bindir
  if [ -f "$dir/redis/redis.pid" ]; then
    pid=$(cat "$dir/redis/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -f "$dir/pg/data/postmaster.pid" ] && bindir=$(pg_bindir); then
    as_postgres "$bindir/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null ||
      kill -9 "$(head -n 1 "$dir/pg/data/postmaster.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
  echo "services.sh: PostgreSQL and Redis stopped, $dir removed"
}

case "$action" in
  start)
    mkdir -p "$dir"
    # On failure (set -e) show the logs; the caller's `stop DIR` cleans up what did start.
    trap 'echo "services.sh: start failed; logs:" >&2
          tail -n 30 "$dir"/pg/*.log "$dir"/redis/*.log >&2 2>/dev/null' EXIT
    start
    trap - EXIT
    ;;
  stop) stop ;;
  *) usage ;;
esac
