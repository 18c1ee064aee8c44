#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs MariaDB and PostgreSQL
# (Debian packages) if missing, starts throwaway servers on 127.0.0.1 on free
# ports, runs fmt, clippy and every test, and stops the servers again.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p movierec-core`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

section() { printf '\n== %s\n' "$*"; }

section "Installing test services (MariaDB, PostgreSQL) if missing"
missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

work=$(mktemp -d /tmp/movierec-test.XXXXXX)
chmod 755 "$work"
pg_pid=""; maria_pid=""
cleanup() {
  set +e
  [ -n "$maria_pid" ] && kill "$maria_pid" 2>/dev/null && wait "$maria_pid" 2>/dev/null
  [ -n "$pg_pid" ] && su postgres -s /bin/sh -c "/usr/lib/postgresql/15/bin/pg_ctl -D '$work/pg' -m fast -w stop" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

section "Starting PostgreSQL 15 on 127.0.0.1"
pg_port=$(free_port)
mkdir -p "$work/pg" "$work/pgsock"
chown postgres:postgres "$work/pg" "$work/pgsock"
su postgres -s /bin/sh -c "/usr/lib/postgresql/15/bin/initdb -D '$work/pg' -U postgres --auth=trust >/dev/null"
su postgres -s /bin/sh -c "/usr/lib/postgresql/15/bin/pg_ctl -D '$work/pg' -l '$work/pgsock/pg.log' -w -t 60 \
  -o \"-c listen_addresses=127.0.0.1 -p $pg_port -k $work/pgsock -c fsync=off\" start" >/dev/null \
  || { echo "PostgreSQL did not start:"; tail -20 "$work/pgsock/pg.log"; exit 1; }
pg_pid=started
export MOVIEREC_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:$pg_port/postgres"

section "Starting MariaDB on 127.0.0.1"
maria_port=$(free_port)
mkdir -p "$work/maria" "$work/maria-run"
chown mysql:mysql "$work/maria" "$work/maria-run"
mariadb-install-db --user=mysql --datadir="$work/maria" --auth-root-authentication-method=normal \
  --skip-test-db >"$work/maria-install.log" 2>&1 || { tail -20 "$work/maria-install.log"; exit 1; }
mariadbd --user=mysql --datadir="$work/maria" --socket="$work/maria-run/maria.sock" --port="$maria_port" \
  --bind-address=127.0.0.1 --pid-file="$work/maria-run/maria.pid" --innodb-flush-log-at-trx-commit=0 \
  >"$work/maria.log" 2>&1 &
maria_pid=$!
for _ in $(seq 1 150); do
  mariadb-admin --socket="$work/maria-run/maria.sock" -uroot ping --silent >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb-admin --socket="$work/maria-run/maria.sock" -uroot ping --silent >/dev/null 2>&1 \
  || { echo "MariaDB did not start:"; tail -20 "$work/maria.log"; exit 1; }
mariadb --socket="$work/maria-run/maria.sock" -uroot -e "CREATE USER 'movierec'@'127.0.0.1' IDENTIFIED BY 'movierec';
  GRANT ALL PRIVILEGES ON *.* TO 'movierec'@'127.0.0.1' WITH GRANT OPTION;"
export MOVIEREC_TEST_MYSQL_URL="mysql://movierec:movierec@127.0.0.1:$maria_port"

export MOVIEREC_MOVIELENS_DIR="${MOVIEREC_MOVIELENS_DIR:-$repo/../shared/data/movielens}"
env | grep '^MOVIEREC_' | sort

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test"
cargo test --workspace --all-targets "$@"
