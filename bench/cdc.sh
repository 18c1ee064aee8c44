#!/usr/bin/env bash
# The warehouse export benchmark: feature changes in the SQLite change log ->
# gzip CSV files in a local lake -> PostgreSQL (`movierec cdc run`), and a
# whole-table backfill (`movierec cdc backfill`), against two anchors in the
# same run:
#   - seed layout: the same exporter writing a file and a load per ~100
#     changes (the seed's Lambda: a stream batch of 100 -> one S3 object ->
#     one COPY), to show what batching buys;
#   - psql COPY: the same rows (the CSV of the batched run's files) sent by
#     psql's \copy into a bare table: the floor of loading them at all;
#   - psql COPY + upsert: the same rows through the loader's SQL (staging
#     table, newest row per key, ON CONFLICT upsert) typed into psql: the
#     floor of this load shape without movierec (users and movies share ids,
#     so it upserts fewer rows than it copies).
#
# usage: bench/cdc.sh [--ratings 2000000] [--users 200000] [--movies 50000] [--runs 3]
#                     [--seed-runs 1] [--seed 42]
#
# Needs target/release/movierec (run `cargo build --release` first) and
# PostgreSQL 15's server binaries (Debian's postgresql package); it starts a
# throwaway cluster of its own on a free port (as the postgres user when root).
# Results: bench/out/cdc-<timestamp>/ (logs, GNU time output),
#          bench/out/cdc-<timestamp>.json and .md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

ratings=2000000 users=200000 movies=50000 runs=3 seed_runs=1 seed=42
usage() { sed -n '/^# usage/,/^#$/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in -h|--help) usage; exit 0;; esac
  [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; usage >&2; exit 2; }
  case "$1" in
    --ratings) ratings=$2;; --users) users=$2;; --movies) movies=$2;; --runs) runs=$2;;
    --seed-runs) seed_runs=$2;; --seed) seed=$2;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2;;
  esac
  shift 2
done
for v in ratings users movies runs seed_runs seed; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$runs" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }

bin=$repo/target/release/movierec
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first" >&2; exit 1; }
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$PG_BIN/pg_ctl" ] || { echo "no $PG_BIN/pg_ctl: apt-get install postgresql (or set PG_BIN)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "no GNU time: apt-get install time" >&2; exit 1; }

stamp=$(date -u +%Y%m%d-%H%M%S)
out=$repo/bench/out/cdc-$stamp
mkdir -p "$out"
chmod 755 "$out"
echo "results in $out"

# --- a PostgreSQL cluster of our own -----------------------------------------
pg=$out/pg
mkdir -p "$pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$pg"
as_pg "$PG_BIN/initdb -D '$pg/data' -U movierec --auth=trust -E UTF8 >'$pg/initdb.log' 2>&1"
# Durable settings as a warehouse would have them (fsync on).
as_pg "$PG_BIN/pg_ctl -D '$pg/data' -l '$pg/server.log' -w -t 60 \
  -o \"-c listen_addresses=127.0.0.1 -p $port -k $pg\" start >/dev/null"
trap 'as_pg "$PG_BIN/pg_ctl -D \"$pg/data\" -m fast stop >/dev/null 2>&1" || true' EXIT
psql_url="postgres://movierec@127.0.0.1:$port/postgres"
db() { psql -q -X -v ON_ERROR_STOP=1 "postgres://movierec@127.0.0.1:$port/$1" "${@:2}"; }

# --- the source: a store whose change log holds every feature row ------------
data=$out/data
"$bin" data synth --ratings "$ratings" --users "$users" --movies "$movies" --seed "$seed" \
  --out "$data" >/dev/null 2>&1
source_dir=$out/source
mkdir -p "$source_dir"
cat >"$source_dir/config.yaml" <<EOF
sqlite: { path: "$source_dir/store.db" }
lake: { root: "$source_dir/lake" }
models: { enabled: false }
EOF
# `cdc status` turns the change log on before the import writes the features.
(cd "$source_dir" && "$bin" --config config.yaml cdc status >/dev/null 2>&1)
(cd "$source_dir" && MOVIEREC_LOG=warn "$bin" --config config.yaml import movielens "$data" >/dev/null)
changes=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from feature_changes').fetchone()[0])" "$source_dir/store.db")
echo "source: $changes feature changes in the change log"

results=$out/results.tsv
: >"$results"
# run KIND N MAX_FILE_BYTES: a fresh copy of the store, a fresh database, `cdc run`.
run() {
  local kind=$1 n=$2 max=$3 dir=$out/$1-$2
  mkdir -p "$dir"
  cp "$source_dir/store.db" "$dir/store.db"
  local name="w_${kind//-/_}_$n"
  db postgres -c "CREATE DATABASE $name"
  cat >"$dir/config.yaml" <<EOF
sqlite: { path: "$dir/store.db" }
lake: { root: "$dir/lake" }
export: { warehouse_url: "postgres://movierec@127.0.0.1:$port/$name", max_file_bytes: $max }
EOF
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && MOVIEREC_LOG=warn /usr/bin/time -v -o "$dir/time.txt" \
    "$bin" --config config.yaml cdc run --until-idle 0.2 >"$dir/summary.json" 2>"$dir/stderr.log")
  end=$(date +%s.%N)
  local rows files
  rows=$(db "$name" -At -c "SELECT (SELECT count(*) FROM user_features) + (SELECT count(*) FROM movie_features)")
  files=$(find "$dir/lake/exports" -name '*.csv.gz' | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$n" "$(echo "$end - $start" | bc)" "$rows" "$files" \
    "$(grep 'Maximum resident' "$dir/time.txt" | awk '{print $NF}')" >>"$results"
  echo "$kind run $n: $(tail -1 "$results")"
}
# backfill N: the whole user table of a fresh copy, page after page.
backfill() {
  local n=$1 dir=$out/backfill-$1
  mkdir -p "$dir"
  cp "$source_dir/store.db" "$dir/store.db"
  local name="w_backfill_$n"
  db postgres -c "CREATE DATABASE $name"
  cat >"$dir/config.yaml" <<EOF
sqlite: { path: "$dir/store.db" }
lake: { root: "$dir/lake" }
export: { warehouse_url: "postgres://movierec@127.0.0.1:$port/$name", page_size: 5000 }
EOF
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && MOVIEREC_LOG=warn /usr/bin/time -v -o "$dir/time.txt" \
    "$bin" --config config.yaml cdc backfill --table user_features >"$dir/summary.json" 2>"$dir/stderr.log")
  end=$(date +%s.%N)
  local rows files
  rows=$(db "$name" -At -c "SELECT count(*) FROM user_features")
  files=$(find "$dir/lake/exports" -name '*.csv.gz' | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' backfill "$n" "$(echo "$end - $start" | bc)" "$rows" "$files" \
    "$(grep 'Maximum resident' "$dir/time.txt" | awk '{print $NF}')" >>"$results"
  echo "backfill run $n: $(tail -1 "$results")"
}
# copy N: psql \copy of the batched run's rows into a bare table.
copy_floor() {
  local n=$1 dir=$out/copy-$1
  mkdir -p "$dir"
  find "$out/batched-1/lake/exports" -name '*.csv.gz' -print0 | xargs -0 zcat >"$dir/rows.csv"
  local name="w_copy_$n"
  db postgres -c "CREATE DATABASE $name"
  db "$name" -c "CREATE TABLE rows (key BIGINT, op CHAR(1), version BIGINT, rating_count BIGINT, avg_rating DOUBLE PRECISION, std_dev DOUBLE PRECISION, last_update TIMESTAMPTZ)"
  local start end
  start=$(date +%s.%N)
  db "$name" -c "\\copy rows FROM '$dir/rows.csv' WITH (FORMAT csv)"
  end=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' psql-copy "$n" "$(echo "$end - $start" | bc)" \
    "$(db "$name" -At -c 'SELECT count(*) FROM rows')" 1 "" >>"$results"
  echo "psql copy run $n: $(tail -1 "$results")"
}

# copy_upsert N: the loader's SQL (crates/export/src/warehouse.rs) typed into psql.
copy_upsert() {
  local n=$1 dir=$out/copy-$1
  local name="w_copy_upsert_$n"
  db postgres -c "CREATE DATABASE $name"
  db "$name" -c "CREATE TABLE features (key BIGINT PRIMARY KEY, rating_count BIGINT, avg_rating DOUBLE PRECISION, std_dev DOUBLE PRECISION, last_update TIMESTAMPTZ, source_version BIGINT NOT NULL)"
  local start end
  start=$(date +%s.%N)
  db "$name" <<SQL
BEGIN;
CREATE TEMP TABLE movierec_stage (seq BIGSERIAL, key BIGINT NOT NULL, op CHAR(1) NOT NULL, version BIGINT NOT NULL, rating_count BIGINT, avg_rating DOUBLE PRECISION, std_dev DOUBLE PRECISION, last_update TIMESTAMPTZ) ON COMMIT DROP;
\copy movierec_stage (key, op, version, rating_count, avg_rating, std_dev, last_update) FROM '$dir/rows.csv' WITH (FORMAT csv)
WITH latest AS (SELECT DISTINCT ON (key) key, op, version, rating_count, avg_rating, std_dev, last_update FROM movierec_stage ORDER BY key, seq DESC) INSERT INTO features (key, rating_count, avg_rating, std_dev, last_update, source_version) SELECT key, rating_count, avg_rating, std_dev, last_update, version FROM latest WHERE op = 'U' ON CONFLICT (key) DO UPDATE SET rating_count = EXCLUDED.rating_count, avg_rating = EXCLUDED.avg_rating, std_dev = EXCLUDED.std_dev, last_update = EXCLUDED.last_update, source_version = EXCLUDED.source_version WHERE features.source_version < EXCLUDED.source_version;
COMMIT;
SQL
  end=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' psql-copy-upsert "$n" "$(echo "$end - $start" | bc)" \
    "$(wc -l <"$dir/rows.csv")" 1 "" >>"$results"
  echo "psql copy + upsert run $n: $(tail -1 "$results")"
}

for i in $(seq 1 "$runs"); do
  run batched "$i" 67108864
  copy_floor "$i"
  copy_upsert "$i"
  backfill "$i"
done
# ~100 changes per file and load, as the seed's Lambda wrote them.
row_bytes=$(python3 -c "
import gzip,glob,sys
b=r=0
for f in glob.glob(sys.argv[1]+'/**/*.csv.gz', recursive=True):
    d=gzip.open(f).read(); b+=len(d); r+=d.count(b'\n')
print(max(1,b//max(1,r)))" "$out/batched-1/lake/exports")
for i in $(seq 1 "$seed_runs"); do
  run seed-layout "$i" $((row_bytes * 100))
done

python3 - "$results" "$out" "$changes" "$ratings" "$users" "$movies" "$runs" "$seed_runs" <<'PY'
import json, statistics, sys, platform, subprocess
path, out, changes, ratings, users, movies, runs, seed_runs = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
by = {}
for kind, n, secs, loaded, files, rss in rows:
    by.setdefault(kind, []).append((float(secs), int(loaded), int(files), int(rss) if rss else None))
summary = {}
for kind, results in by.items():
    secs = [r[0] for r in results]
    med = statistics.median(secs)
    summary[kind] = {
        "runs": len(results), "seconds": secs, "median_s": med,
        "rows": results[0][1], "rows_per_s": results[0][1] / med, "files": results[0][2],
        "peak_rss_kib": max((r[3] for r in results if r[3]), default=None),
    }
meta = {"changes": int(changes), "ratings": int(ratings), "users": int(users), "movies": int(movies),
        "cpu": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() + " cores",
        "machine": platform.platform()}
json.dump({"meta": meta, "results": summary}, open(out + ".json", "w"), indent=2)
base = summary["batched"]["median_s"]
lines = [f"changes in the log: {int(changes):,} (synthetic: {int(ratings):,} ratings, {int(users):,} users, {int(movies):,} movies)", "",
         "| job | runs | median s | rows | rows/s | files | peak RSS MiB | vs batched |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
names = {"batched": "cdc run (64 MiB files)", "psql-copy": "psql \\copy of the same rows into a bare table (floor)",
         "psql-copy-upsert": "psql: \\copy to staging + the loader's upsert, same rows",
         "backfill": "cdc backfill user_features (5,000-row pages)", "seed-layout": "cdc run, ~100 changes per file and load (seed layout)"}
for kind in ["batched", "psql-copy", "psql-copy-upsert", "backfill", "seed-layout"]:
    if kind not in summary: continue
    s = summary[kind]
    rss = f"{s['peak_rss_kib']/1024:.0f}" if s["peak_rss_kib"] else "-"
    lines.append(f"| {names[kind]} | {s['runs']} | {s['median_s']:.2f} | {s['rows']:,} | {s['rows_per_s']:,.0f} | {s['files']:,} | {rss} | {s['median_s']/base:.2f}x |")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
