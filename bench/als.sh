#!/usr/bin/env bash
# The ALS training benchmark: movierec's explicit ALS (embedded, release)
# against Spark MLlib's ALS (jobs/spark/als.py, PySpark local[2]) on the same
# synthetic MovieLens-shaped set, the same split (random:0.9:42), rank,
# iterations and λ, in the same run. Reports seconds per iteration (medians),
# test RMSE of both, and the ratios.
#
# usage: bench/als.sh [--ratings 25000000] [--users 162000] [--movies 59000] [--seed 42]
#                     [--rank 64] [--iterations 5] [--lambda 0.05] [--solver cg]
#                     [--runs 3] [--spark-runs 1] [--spark-master local[2]] [--spark-driver-memory 12g]
#
# Data:    $MOVIEREC_BENCH_DATA (default data/bench)/synth-<ratings>-<users>-<movies>-<seed>/,
#          made once by `movierec data synth` and reused.
# Results: bench/out/als-<timestamp>/ (eval JSON and logs, GNU time output),
#          bench/out/als-<timestamp>.json and .md.
#
# Seconds per iteration, two ways for each engine:
#   fit / iterations: the whole fit (movierec: indexing the ratings; Spark:
#     partitioning them into blocks) divided by the iterations, for both;
#   per iteration: movierec's median measured iteration (`iteration_seconds`),
#     Spark's marginal iteration, (fit − a 1-iteration fit) / (iterations − 1),
#     the 1-iteration fit run first in the same JVM (--spark-warmup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
cargo_bin=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
[ -d "$cargo_bin" ] && case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

ratings=25000000 users=162000 movies=59000 seed=42 rank=64 iterations=5 lambda=0.05 solver=cg
runs=3 spark_runs=1 spark_master='local[2]' driver_memory=12g
usage() { sed -n '8,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || case "$1" in -h|--help) ;; *) echo "option $1 needs a value" >&2; usage >&2; exit 2;; esac
  case "$1" in
    --ratings) ratings=$2;; --users) users=$2;; --movies) movies=$2;; --seed) seed=$2;;
    --rank) rank=$2;; --iterations) iterations=$2;; --lambda) lambda=$2;; --solver) solver=$2;;
    --runs) runs=$2;; --spark-runs) spark_runs=$2;;
    --spark-master) spark_master=$2;; --spark-driver-memory) driver_memory=$2;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2;;
  esac
  shift 2
done
for v in ratings users movies seed rank iterations runs spark_runs; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[[ $lambda =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "--lambda must be a number, got '$lambda'" >&2; exit 2; }
[ "$runs" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }
[ "$iterations" -ge 2 ] || { echo "--iterations must be at least 2 (Spark's marginal iteration)" >&2; exit 2; }
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
bin=${CARGO_TARGET_DIR:-$repo/target}/release/movierec

data_root=${MOVIEREC_BENCH_DATA:-$repo/data/bench}
data=$data_root/synth-$ratings-$users-$movies-$seed
section "Data: $data"
if [ -f "$data/ratings.csv" ] && [ -f "$data/done" ]; then
  echo "reusing $data"
else
  rm -rf "$data" "$data.tmp"
  mkdir -p "$data.tmp"
  "$bin" data synth --ratings "$ratings" --users "$users" --movies "$movies" --seed "$seed" --out "$data.tmp"
  touch "$data.tmp/done"
  mv "$data.tmp" "$data"
fi
echo "ratings.csv: $(($(stat -c %s "$data/ratings.csv") / 1000000)) MB"

stamp=$(date +%Y%m%d-%H%M%S)
out=$repo/bench/out/als-$stamp
mkdir -p "$out"
: >"$out/runs.tsv"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
config=$out/config.yaml
cat >"$config" <<YAML
batch:
  spark:
    master: "$spark_master"
    job: "$repo/jobs/spark/lakehouse.py"
    conf: { spark.driver.memory: "$driver_memory" }
YAML
common=(--dataset "$data" --split random:0.9:42 --models als --als-rank "$rank" --als-iterations "$iterations"
        --als-lambda "$lambda" --rating-only --json)

measure() { # job run command...
  local job=$1 run=$2; shift 2
  local tf=$out/$job-$run.time json=$out/$job-$run.json log=$out/$job-$run.log start end rc=0
  start=$EPOCHREALTIME
  MOVIEREC_LOG=info /usr/bin/time -v -o "$tf" "$@" >"$json" 2>"$log" || rc=$?
  end=$EPOCHREALTIME
  local wall; wall=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$run" "$wall" "$tf" "$json" "$rc" >>"$out/runs.tsv"
  printf '  %-10s run %s: %8.1f s wall, peak RSS %s KiB%s\n' "$job" "$run" "$wall" \
    "$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf" 2>/dev/null)" "$([ $rc = 0 ] || echo ", FAILED (exit $rc)")"
  if [ "$rc" != 0 ]; then echo "--- $log (last 30 lines):"; tail -30 "$log"; die "$job run $run failed"; fi
}

section "movierec eval (embedded ALS rank $rank, $iterations iterations, λ $lambda, solver $solver) x $runs"
for i in $(seq "$runs"); do
  measure embedded "$i" "$bin" --config "$config" eval "${common[@]}" --engine embedded --als-solver "$solver"
done
if [ "$spark_runs" -gt 0 ]; then
  section "movierec eval --engine spark (MLlib ALS, $spark_master, driver memory $driver_memory) x $spark_runs"
  for i in $(seq "$spark_runs"); do
    measure spark "$i" "$bin" --config "$config" eval "${common[@]}" --engine spark --spark-warmup
  done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

section "Results"
export BENCH_OUT=$out BENCH_STAMP=$stamp BENCH_LOAD_BEFORE=$load_before BENCH_LOAD_AFTER=$load_after \
  BENCH_ARGS="--ratings $ratings --users $users --movies $movies --seed $seed --rank $rank --iterations $iterations --lambda $lambda --solver $solver --runs $runs --spark-runs $spark_runs --spark-master $spark_master --spark-driver-memory $driver_memory"
python3 - <<'PY'
import json, os, statistics, sys
sys.path.insert(0, "bench")
from benchlib import gnu_time, sh  # noqa: E402

env = os.environ
out, stamp = env["BENCH_OUT"], env["BENCH_STAMP"]
runs = []
for line in open(os.path.join(out, "runs.tsv")):
    job, run, wall, tf, js, rc = line.rstrip("\n").split("\t")
    result = json.load(open(js))
    mean = {r["model"]: r for r in result["mean"]}
    runs.append({"job": job, "run": int(run), "wall_s": float(wall), "exit": int(rc),
                 "ratings": result["ratings"], "rmse": {m: r["rmse"] for m, r in mean.items()},
                 "training": result["training"], **gnu_time(tf)})
med = statistics.median
emb = [r for r in runs if r["job"] == "embedded"]
spk = [r for r in runs if r["job"] == "spark"]
e_train = [t for r in emb for t in r["training"]]
s_train = [t for r in spk for t in r["training"]]
summary = {
    "embedded": {
        "runs": len(emb),
        "rmse": med(r["rmse"]["als"] for r in emb),
        "fit_seconds": med(t["fit_seconds"] for t in e_train),
        "fit_per_iteration_s": med(t["seconds_per_iteration"] for t in e_train),
        "median_iteration_s": med(s for t in e_train for s in t["iteration_seconds"]),
        "iteration_seconds": [t["iteration_seconds"] for t in e_train],
        "peak_rss_mib": max(r["peak_rss_kib"] for r in emb) / 1024,
    }
}
if spk:
    summary["spark"] = {
        "runs": len(spk),
        "rmse": med(r["rmse"]["als (spark)"] for r in spk),
        "fit_seconds": med(t["fit_seconds"] for t in s_train),
        "fit_per_iteration_s": med(t["seconds_per_iteration"] for t in s_train),
        "marginal_iteration_s": med(t["marginal_seconds_per_iteration"] for t in s_train),
        "warmup_fit_seconds": med(t["spark"]["warmup_fit_seconds"] for t in s_train),
        "spark_version": s_train[0]["spark"]["spark_version"],
        "master": s_train[0]["spark"]["master"],
        "peak_rss_mib_movierec_process_tree": max(r["peak_rss_kib"] for r in spk) / 1024,
    }
e = summary["embedded"]
ratios = {}
if spk:
    s = summary["spark"]
    ratios = {"fit_per_iteration": s["fit_per_iteration_s"] / e["fit_per_iteration_s"],
              "per_iteration": s["marginal_iteration_s"] / e["median_iteration_s"],
              "rmse_difference_spark_minus_embedded": s["rmse"] - e["rmse"]}
result = {"timestamp": stamp, "command": f"bench/als.sh {env['BENCH_ARGS']}",
          "git_commit": sh("git rev-parse HEAD"), "ratings": runs[0]["ratings"], "runs": runs,
          "summary": summary, "ratios": ratios,
          "loadavg": [env["BENCH_LOAD_BEFORE"], env["BENCH_LOAD_AFTER"]]}
base = os.path.join(os.path.dirname(out), f"als-{stamp}")
json.dump(result, open(base + ".json", "w"), indent=2)
rows = [f"| movierec ALS (embedded) | {e['fit_per_iteration_s']:.2f} | {e['median_iteration_s']:.2f} | "
        f"{e['fit_seconds']:.1f} | {e['rmse']:.4f} | {e['runs']} |"]
if spk:
    rows.append(f"| Spark MLlib ALS ({s['master']}, {s['spark_version']}) | {s['fit_per_iteration_s']:.2f} | "
                f"{s['marginal_iteration_s']:.2f} (marginal) | {s['fit_seconds']:.1f} | {s['rmse']:.4f} | {s['runs']} |")
md = "\n".join([
    f"### ALS benchmark {stamp}", "", "```sh", result["command"], "```", "",
    f"{result['ratings']:,} ratings (90% train, 10% test). Load average {env['BENCH_LOAD_BEFORE']} before / "
    f"{env['BENCH_LOAD_AFTER']} after. Commit {(result['git_commit'] or '?')[:10]}.", "",
    "| engine | fit s / iteration (median) | s per iteration (median) | fit s (median) | test RMSE | runs |",
    "| --- | ---: | ---: | ---: | ---: | ---: |", *rows, "",
    (f"- Spark / movierec, fit per iteration: **{ratios['fit_per_iteration']:.1f}x**; per iteration: "
     f"**{ratios['per_iteration']:.1f}x**. RMSE Spark − movierec: {ratios['rmse_difference_spark_minus_embedded']:+.4f}."
     if ratios else "- Spark: not run."),
    f"- movierec iterations (s): {e['iteration_seconds']}; peak RSS {e['peak_rss_mib']:.0f} MiB.",
    ""])
open(base + ".md", "w").write(md)
print(md)
print(f"written: {base}.json, {base}.md")
PY
