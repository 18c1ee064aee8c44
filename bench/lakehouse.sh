#!/usr/bin/env bash
# The lakehouse benchmark: bronze JSON events -> silver -> gold -> serving
# database, `movierec batch run` on the embedded engine against the same
# command on the Spark engine (jobs/spark/lakehouse.py, PySpark local[2]),
# on the same lake, in the same run; then `lake compact` throughput
# (JSON lines -> JSON lines, and -> Parquet) on copies of the bronze layer.
#
# usage: bench/lakehouse.sh [--events 25000000] [--users 162000] [--movies 62000]
#                           [--runs 3] [--spark-runs 1] [--seed 42]
#                           [--spark-master local[2]] [--spark-driver-memory 4g]
#
# Data:    bench/out/lake-<events>/ (made once by `movierec data bronze`, reused
#          while the parameters are the same).
# Results: bench/out/lakehouse-<timestamp>/ (logs, GNU time output),
#          bench/out/lakehouse-<timestamp>.json and .md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
cargo_bin=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
[ -d "$cargo_bin" ] && case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

events=25000000 users=162000 movies=62000 runs=3 spark_runs=1 seed=42
spark_master='local[2]' driver_memory=4g
usage() { sed -n '8,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || case "$1" in -h|--help) ;; *) echo "option $1 needs a value" >&2; usage >&2; exit 2;; esac
  case "$1" in
    --events) events=$2;; --users) users=$2;; --movies) movies=$2;;
    --runs) runs=$2;; --spark-runs) spark_runs=$2;; --seed) seed=$2;;
    --spark-master) spark_master=$2;; --spark-driver-memory) driver_memory=$2;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2;;
  esac
  shift 2
done
for v in events users movies runs spark_runs seed; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$runs" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }
export SPARK_LOCAL_IP=127.0.0.1
section() { printf '\n==== %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

section "Tools"
[ -x /usr/bin/time ] || die "GNU time is missing: apt-get install time"
if [ "$spark_runs" -gt 0 ]; then
  command -v java >/dev/null || die "java is missing: apt-get install openjdk-17-jre-headless"
  python3 -c 'import pyspark, sys; sys.exit(pyspark.__version__ != "4.3.0")' 2>/dev/null \
    || { echo "installing pyspark==4.3.0 (about 3 minutes)"; python3 -m pip install -q pyspark==4.3.0; }
fi
section "Building movierec (release)"
cargo build --release -p movierec
bin=$repo/target/release/movierec

data=$repo/bench/out/lake-$events
params="events=$events users=$users movies=$movies seed=$seed"
section "Data: $data ($params)"
if [ -d "$data/bronze" ] && [ "$(cat "$data/params" 2>/dev/null)" = "$params" ]; then
  echo "reusing $data/bronze"
else
  rm -rf "$data" "$data.tmp"
  mkdir -p "$data.tmp"
  "$bin" data bronze --events "$events" --users "$users" --movies "$movies" --seed "$seed" --lake "$data.tmp"
  echo "$params" >"$data.tmp/params"
  mv "$data.tmp" "$data"
fi
bronze_bytes=$(du -sb "$data/bronze" | cut -f1)
bronze_files=$(find "$data/bronze" -type f | wc -l)
echo "bronze: $bronze_files objects, $((bronze_bytes / 1000000)) MB"

stamp=$(date +%Y%m%d-%H%M%S)
out=$repo/bench/out/lakehouse-$stamp
mkdir -p "$out"
: >"$out/runs.tsv"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
config=$out/config.yaml
cat >"$config" <<YAML
lake:
  root: "$data"
sqlite:
  path: "$out/store.db"
serving:
  database_url: "sqlite://$out/serving.db"
batch:
  spark:
    master: "$spark_master"
    job: "$repo/jobs/spark/lakehouse.py"
    conf: { spark.driver.memory: "$driver_memory" }
YAML

measure() { # job run command...
  local job=$1 run=$2; shift 2
  local tf=$out/$job-$run.time log=$out/$job-$run.log start end rc=0
  start=$EPOCHREALTIME
  /usr/bin/time -v -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  end=$EPOCHREALTIME
  local wall; wall=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
  printf '%s\t%s\t%s\t%s\t%s\n' "$job" "$run" "$wall" "$tf" "$rc" >>"$out/runs.tsv"
  printf '  %-16s run %s: %8.3f s, peak RSS %s KiB%s\n' "$job" "$run" "$wall" \
    "$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf" 2>/dev/null)" "$([ $rc = 0 ] || echo ", FAILED (exit $rc)")"
  if [ "$rc" != 0 ]; then echo "--- $log (last 30 lines):"; tail -30 "$log"; die "$job run $run failed"; fi
}

section "Read only: cat every bronze object > /dev/null (after one warm-up read)"
find "$data/bronze" -type f -exec cat {} + >/dev/null
for i in $(seq "$runs"); do measure read-cat "$i" sh -c 'find "$1" -type f -exec cat {} + >/dev/null' sh "$data/bronze"; done

section "movierec batch run --all (embedded) x $runs"
for i in $(seq "$runs"); do measure embedded "$i" "$bin" --config "$config" batch run --all; done
grep -h "batch succeeded" "$out/embedded-$runs.log" || true

if [ "$spark_runs" -gt 0 ]; then
  section "movierec batch run --all --engine spark ($spark_master, driver memory $driver_memory) x $spark_runs"
  for i in $(seq "$spark_runs"); do measure spark "$i" "$bin" --config "$config" batch run --all --engine spark; done
  grep -h "batch succeeded" "$out/spark-$spark_runs.log" || true
fi

section "lake compact on copies of the bronze layer (min-age 0s, target 128MiB)"
compact_config=$out/compact.yaml
sed "s|  root: \"$data\"|  root: \"$out/compact-lake\"|" "$config" >"$compact_config"
grep -q "compact-lake" "$compact_config" || die "cannot point $compact_config at the copy"
for format in json parquet; do
  for i in $(seq "$runs"); do
    rm -rf "$out/compact-lake"; mkdir -p "$out/compact-lake"; cp -r "$data/bronze" "$out/compact-lake/"
    sync
    measure "compact-$format" "$i" "$bin" --config "$compact_config" lake compact --min-age 0s --format "$format"
    [ "$i" = "$runs" ] && { grep -h "compacted" "$out/compact-$format-$i.log" || true; echo "  after: $(find "$out/compact-lake/bronze" -name 'c-*' | wc -l) compacted objects, $(du -sh "$out/compact-lake/bronze" | cut -f1)"; }
  done
done
rm -rf "$out/compact-lake"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

section "Results"
export BENCH_OUT=$out BENCH_STAMP=$stamp BENCH_BRONZE_BYTES=$bronze_bytes BENCH_BRONZE_FILES=$bronze_files \
  BENCH_ARGS="--events $events --users $users --movies $movies --runs $runs --spark-runs $spark_runs --seed $seed --spark-master $spark_master --spark-driver-memory $driver_memory" \
  BENCH_LOAD_BEFORE=$load_before BENCH_LOAD_AFTER=$load_after BENCH_EVENTS=$events
python3 - <<'PY'
import json, os, re, statistics, sys
sys.path.insert(0, "bench")
from benchlib import gnu_time, sh  # noqa: E402

env = os.environ
out, stamp = env["BENCH_OUT"], env["BENCH_STAMP"]
bronze_mb = int(env["BENCH_BRONZE_BYTES"]) / 1e6
runs = []
for line in open(os.path.join(out, "runs.tsv")):
    job, run, wall, tf, rc = line.rstrip("\n").split("\t")
    runs.append({"job": job, "run": int(run), "wall_s": float(wall), "exit": int(rc), **gnu_time(tf)})
labels = {
    "read-cat": "read only: `cat` every bronze object",
    "embedded": "movierec `batch run --all` (embedded, release)",
    "spark": "movierec `batch run --all --engine spark` (PySpark 4.3)",
    "compact-json": "`lake compact` JSON lines -> JSON lines",
    "compact-parquet": "`lake compact --format parquet` JSON lines -> Parquet",
}
summary = {}
for job in labels:
    rs = [r for r in runs if r["job"] == job]
    if rs:
        walls = [r["wall_s"] for r in rs]
        summary[job] = {
            "runs": len(rs), "median_wall_s": statistics.median(walls),
            "min_wall_s": min(walls), "max_wall_s": max(walls),
            "max_peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
            "median_cpu_s": statistics.median(r["user_s"] + r["sys_s"] for r in rs),
        }
ratio = (summary["spark"]["median_wall_s"] / summary["embedded"]["median_wall_s"]
         if "spark" in summary else None)
mbps = {j: bronze_mb / summary[j]["median_wall_s"] for j in ("compact-json", "compact-parquet") if j in summary}
stage_line = ""
log = os.path.join(out, f"embedded-{summary['embedded']['runs']}.log")
stages = re.findall(r"stage (\w[\w-]*): (\d+) rows in (\d+) ms", open(log).read())
if stages:
    stage_line = ", ".join(f"{n} {int(ms) / 1000:.1f} s" for n, _, ms in stages)
result = {"timestamp": stamp, "command": f"bench/lakehouse.sh {env['BENCH_ARGS']}",
          "git_commit": sh("git rev-parse HEAD"), "bronze_mb": bronze_mb,
          "bronze_files": int(env["BENCH_BRONZE_FILES"]), "runs": runs, "summary": summary,
          "spark_over_embedded": ratio, "compaction_mb_per_s": mbps, "embedded_stages": stage_line,
          "loadavg": [env["BENCH_LOAD_BEFORE"], env["BENCH_LOAD_AFTER"]]}
base = os.path.join(os.path.dirname(out), f"lakehouse-{stamp}")
json.dump(result, open(base + ".json", "w"), indent=2)
rows = [f"| {labels[j]} | {s['median_wall_s']:.2f} | {s['min_wall_s']:.2f}–{s['max_wall_s']:.2f} | "
        f"{s['max_peak_rss_mib']:.0f} | {s['median_cpu_s']:.1f} | {s['runs']} |" for j, s in summary.items()]
md = "\n".join([
    f"### Lakehouse benchmark {stamp}", "", "```sh", result["command"], "```", "",
    f"Bronze: {int(env['BENCH_EVENTS']):,} events, {bronze_mb:.0f} MB of JSON lines in {result['bronze_files']:,} objects. "
    f"Load average {env['BENCH_LOAD_BEFORE']} before / {env['BENCH_LOAD_AFTER']} after. Commit {(result['git_commit'] or '?')[:10]}.", "",
    "| job | median wall s | min–max s | peak RSS MiB (max) | CPU s (median) | runs |",
    "| --- | ---: | ---: | ---: | ---: | ---: |", *rows, "",
    f"- Spark / embedded, end to end: **{ratio:.1f}x**." if ratio else "- Spark: not run.",
    f"- Embedded stages (last run): {stage_line}.",
    "- Compaction throughput (bronze MB / median wall s): " + ", ".join(f"{j} **{v:.0f} MB/s**" for j, v in mbps.items()) + ".",
    ""])
open(base + ".md", "w").write(md)
print(md)
print(f"written: {base}.json, {base}.md")
PY
