# shellcheck shell=bash
# PostgreSQL and Redis for the test suite. Source it after scripts/lib.sh.
#
# The tests expect PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth,
# database "test") and Redis on 127.0.0.1:6379. When one is not reachable:
#   - under CI=true that is a hard failure (CI machines run both services);
#   - otherwise a throwaway instance is started in a temporary directory
#     (installing Debian's packages when missing) and stopped by
#     stop_throwaway_services when the tests end.

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

THROWAWAY_DIR=""
THROWAWAY_PG_DATA=""
THROWAWAY_PG_BIN=""
THROWAWAY_REDIS_PIDFILE=""

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Wait up to $3 seconds for host $1 port $2 to accept connections.
wait_port() {
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

_require_or_start() {
  local name=$1 host=$2 port=$3 starter=$4
  port_open "$host" "$port" && return 0
  if [[ ${CI:-} == true ]]; then
    die "$name is not reachable on $host:$port. Under CI=true the machine must already run it; refusing to start a throwaway one."
  fi
  say "$name is not running on $host:$port: starting a throwaway instance"
  "$starter"
}

_throwaway_dir() {
  if [[ -z $THROWAWAY_DIR ]]; then
    THROWAWAY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/intentd-test-services.XXXXXX")
    chmod 755 "$THROWAWAY_DIR"
  fi
}

# initdb refuses to run as root: as root, run the server as the postgres user
# that Debian's package creates.
_as_pg_user() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin), or nothing.
_pg_bin_dir() {
  local dirs=(/usr/lib/postgresql/*/bin)
  [[ -x ${dirs[0]}/initdb ]] || return 0
  printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1
}

_start_postgres() {
  local bin
  bin=$(_pg_bin_dir)
  if [[ -z $bin ]]; then
    apt_install postgresql
    bin=$(_pg_bin_dir)
    [[ -n $bin ]] || die "PostgreSQL installed but initdb not found under /usr/lib/postgresql"
  fi
  _throwaway_dir
  local data="$THROWAWAY_DIR/pg"
  mkdir -p "$data"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$data"; fi
  _as_pg_user "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 >"$THROWAWAY_DIR/initdb.log" 2>&1 ||
    die "initdb failed: see $THROWAWAY_DIR/initdb.log"
  THROWAWAY_PG_DATA=$data
  THROWAWAY_PG_BIN=$bin
  _as_pg_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=$PG_HOST -p $PG_PORT -k $data -c fsync=off -c max_connections=300" start >/dev/null ||
    die "PostgreSQL did not start: see $data/server.log"
  "$bin/psql" -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null ||
    die "could not create database test"
  say "throwaway PostgreSQL on $PG_HOST:$PG_PORT (data in $data)"
}

_start_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  _throwaway_dir
  THROWAWAY_REDIS_PIDFILE="$THROWAWAY_DIR/redis.pid"
  redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --dir "$THROWAWAY_DIR" --pidfile "$THROWAWAY_REDIS_PIDFILE" \
    --logfile "$THROWAWAY_DIR/redis.log" ||
    die "redis-server did not start: see $THROWAWAY_DIR/redis.log"
  wait_port "$REDIS_HOST" "$REDIS_PORT" 30 || die "Redis did not open $REDIS_HOST:$REDIS_PORT: see $THROWAWAY_DIR/redis.log"
  say "throwaway Redis on $REDIS_HOST:$REDIS_PORT"
}

ensure_postgres() { _require_or_start PostgreSQL "$PG_HOST" "$PG_PORT" _start_postgres; }
ensure_redis() { _require_or_start Redis "$REDIS_HOST" "$REDIS_PORT" _start_redis; }

# True when this run started a service that must be stopped at the end.
started_throwaway_services() { [[ -n $THROWAWAY_DIR ]]; }

stop_throwaway_services() {
  if [[ -n $THROWAWAY_PG_DATA ]]; then
    _as_pg_user "$THROWAWAY_PG_BIN/pg_ctl" -D "$THROWAWAY_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n $THROWAWAY_REDIS_PIDFILE && -f $THROWAWAY_REDIS_PIDFILE ]]; then
    kill "$(cat "$THROWAWAY_REDIS_PIDFILE")" 2>/dev/null || true
  fi
  if [[ -n $THROWAWAY_DIR ]]; then
    # Redis may still be writing its log for a moment after the signal.
    sleep 0.5
    rm -rf "$THROWAWAY_DIR"
  fi
}
