#!/usr/bin/env bash
# The batch benchmark: CSV -> features -> top-1000, movierec against PySpark
# local[2] on the same synthetic file, in the same run. Medians of --runs.
# usage: bench/run.sh [--ratings 25000000] [--users 162000] [--movies 62000] [--runs 3] [--spark-runs 1]
set -euo pipefail
cd "$(dirname "$0")/.."
ratings=25000000 users=162000 movies=62000 runs=3 spark_runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ratings) ratings=$2; shift 2;; --users) users=$2; shift 2;; --movies) movies=$2; shift 2;;
    --runs) runs=$2; shift 2;; --spark-runs) spark_runs=$2; shift 2;;
    *) echo "unknown option $1"; exit 2;;
  esac
done
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
python3 -c 'import pyspark' 2>/dev/null || pip install -q pyspark==4.3.0
cargo build --release -p movierec
bin=target/release/movierec
data=bench/out/data-$ratings
out=bench/out/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
[ -f "$data/ratings.csv" ] || $bin data synth --ratings "$ratings" --users "$users" --movies "$movies" --seed 42 --out "$data"
file=$data/ratings.csv
measure() { # name, command...: appends "name seconds peak_kib" to $out/times
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/.t" "$@" >"$out/$name.log" 2>&1
  echo "$name $(cat "$out/.t")" >>"$out/times"
}
cat "$file" >/dev/null
for i in $(seq "$runs"); do measure read cat "$file"; done
for i in $(seq "$runs"); do measure movierec $bin batch csv --ratings "$file" --out "$out/movierec"; done
for i in $(seq "$spark_runs"); do measure pyspark python3 bench/spark/bayes_top.py --ratings "$file" --out "$out/spark"; done
python3 bench/compare.py "$out/movierec/top-movies.csv" "$out/spark/top-movies.csv" | tee "$out/parity"
python3 - "$out" "$file" <<'PY'
import statistics, sys, os
out, file = sys.argv[1], sys.argv[2]
rows = {}
for line in open(os.path.join(out, "times")):
    name, secs, kib = line.split()
    rows.setdefault(name, []).append((float(secs), int(kib)))
med = {n: (statistics.median(s for s, _ in v), max(k for _, k in v) / 1024) for n, v in rows.items()}
print(f"input: {file} ({os.path.getsize(file) / 2**20:.0f} MiB)")
print(f"{'job':<10} {'median s':>9} {'peak MiB':>9} {'runs':>5}")
for n, (s, mib) in med.items():
    print(f"{n:<10} {s:>9.2f} {mib:>9.0f} {len(rows[n]):>5}")
if "pyspark" in med and "movierec" in med:
    print(f"pyspark / movierec: {med['pyspark'][0] / med['movierec'][0]:.1f}x")
print(f"movierec / read:    {med['movierec'][0] / max(med['read'][0], 0.01):.1f}x")
PY
