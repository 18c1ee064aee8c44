#!/usr/bin/env bash
# The batch benchmark: ratings CSV -> user/movie features -> Bayesian top-N,
# `movierec batch csv` against the seed's job on PySpark (local[2]), on the same
# synthetic MovieLens-format file, in the same run, with a "read only" floor.
#
# usage: bench/run.sh [--ratings 25000000] [--users 162000] [--movies 62000]
#                     [--runs 3] [--spark-runs 1] [--seed 42]
#                     [--min-ratings 50] [--top-n 1000] [--spark-master local[2]]
#
# Data:    bench/out/data-<ratings>/ (made once by `movierec data synth`, reused
#          while users/movies/seed are the same).
# Results: bench/out/run-<timestamp>/ (logs, GNU time output, both outputs),
#          bench/out/results-<timestamp>.json and .md. See bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
cargo_bin=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
[ -d "$cargo_bin" ] && case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

ratings=25000000 users=162000 movies=62000 runs=3 spark_runs=1 seed=42
min_ratings=50 top_n=1000 spark_master='local[2]'
usage() { sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || case "$1" in -h|--help) ;; *) echo "option $1 needs a value" >&2; usage >&2; exit 2;; esac
  case "$1" in
    --ratings) ratings=$2;; --users) users=$2;; --movies) movies=$2;;
    --runs) runs=$2;; --spark-runs) spark_runs=$2;; --seed) seed=$2;;
    --min-ratings) min_ratings=$2;; --top-n) top_n=$2;; --spark-master) spark_master=$2;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2;;
  esac
  shift 2
done
for v in ratings users movies runs spark_runs seed min_ratings top_n; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$runs" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }

export SPARK_LOCAL_IP=127.0.0.1 # Spark binds to loopback only
section() { printf '\n==== %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
section "Tools (GNU time, Java 17, PySpark 4.3.0)"
apt_updated=""
apt_install() {
  [ "$(id -u)" = 0 ] || die "need $* (apt) and not root"
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 || { echo "installing GNU time"; apt_install time; }
if [ "$spark_runs" -gt 0 ]; then
  command -v java >/dev/null 2>&1 || { echo "installing Java 17"; apt_install openjdk-17-jre-headless; }
  if ! python3 -c 'import pyspark, sys; sys.exit(pyspark.__version__ != "4.3.0")' 2>/dev/null; then
    echo "installing pyspark==4.3.0 (about 3 minutes)"
    python3 -m pip install -q pyspark==4.3.0
  fi
fi
echo "GNU time: $(/usr/bin/time --version 2>&1 | head -1)"
[ "$spark_runs" -gt 0 ] && echo "java: $(java -version 2>&1 | head -1); pyspark $(python3 -c 'import pyspark; print(pyspark.__version__)')"

section "Building movierec (release)"
cargo build --release -p movierec
bin=$repo/target/release/movierec
[ -x "$bin" ] || die "no $bin after the build"

# ---------------------------------------------------------------------------
data=bench/out/data-$ratings
params="ratings=$ratings users=$users movies=$movies seed=$seed"
section "Data: $data ($params)"
if [ -f "$data/ratings.csv" ] && [ "$(cat "$data/params" 2>/dev/null)" = "$params" ]; then
  echo "reusing $data/ratings.csv (made $(date -r "$data/ratings.csv" '+%F %T'))"
else
  [ -d "$data" ] && echo "$data was made with other parameters (or by an older harness): making it again"
  rm -rf "$data" "$data.tmp"
  mkdir -p bench/out
  start=$EPOCHREALTIME
  "$bin" data synth --ratings "$ratings" --users "$users" --movies "$movies" --seed "$seed" --out "$data.tmp"
  echo "$params" >"$data.tmp/params"
  mv "$data.tmp" "$data"
  echo "generated in $(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $start}") s"
fi
file=$repo/$data/ratings.csv
[ -s "$file" ] || die "$file is missing or empty"
echo "input: $file ($(du -h "$file" | cut -f1))"

# ---------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
out=$repo/bench/out/run-$stamp
mkdir -p "$out"
: >"$out/runs.tsv" # job run wall_s(bash clock) timefile exit
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

measure() { # job run command...: wall clock (bash) + GNU time -v (peak RSS, CPU)
  local job=$1 run=$2; shift 2
  local tf=$out/$job-$run.time log=$out/$job-$run.log start end rc=0
  start=$EPOCHREALTIME
  /usr/bin/time -v -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  end=$EPOCHREALTIME
  local wall; wall=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
  printf '%s\t%s\t%s\t%s\t%s\n' "$job" "$run" "$wall" "$tf" "$rc" >>"$out/runs.tsv"
  printf '  %-10s run %s: %8.3f s, peak RSS %s KiB%s\n' "$job" "$run" "$wall" \
    "$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf" 2>/dev/null)" "$([ $rc = 0 ] || echo ", FAILED (exit $rc)")"
  if [ "$rc" != 0 ]; then
    echo "--- $log (last 30 lines):"; tail -30 "$log"
    die "$job run $run failed"
  fi
}

section "Read only: cat FILE > /dev/null, wc -l FILE (after one warm-up read)"
cat "$file" >/dev/null
for i in $(seq "$runs"); do measure read-cat "$i" sh -c 'exec cat "$1" >/dev/null' sh "$file"; done
for i in $(seq "$runs"); do measure read-wc "$i" wc -l "$file"; done

section "movierec batch csv x $runs"
for i in $(seq "$runs"); do
  rm -rf "$out/movierec"
  measure movierec "$i" "$bin" batch csv --ratings "$file" --min-ratings "$min_ratings" --top-n "$top_n" --out "$out/movierec"
done
tail -1 "$out/movierec-$runs.log"

if [ "$spark_runs" -gt 0 ]; then
  section "PySpark bench/spark/bayes_top.py ($spark_master) x $spark_runs"
  for i in $(seq "$spark_runs"); do
    rm -rf "$out/pyspark"
    measure pyspark "$i" python3 "$repo/bench/spark/bayes_top.py" --ratings "$file" \
      --min-ratings "$min_ratings" --top-n "$top_n" --master "$spark_master" --out "$out/pyspark"
  done
  tail -1 "$out/pyspark-$spark_runs.log"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

parity_rc=0
if [ "$spark_runs" -gt 0 ]; then
  section "Parity: movierec vs PySpark (bench/compare.py)"
  python3 bench/compare.py "$out/movierec" "$out/pyspark" --labels movierec pyspark >"$out/parity.txt" 2>&1 \
    || parity_rc=$?
  cat "$out/parity.txt"
fi

# ---------------------------------------------------------------------------
section "Results"
export BENCH_OUT=$out BENCH_STAMP=$stamp BENCH_FILE=$file BENCH_PARITY_RC=$parity_rc \
  BENCH_ARGS="--ratings $ratings --users $users --movies $movies --runs $runs --spark-runs $spark_runs --seed $seed --min-ratings $min_ratings --top-n $top_n --spark-master $spark_master" \
  BENCH_RATINGS=$ratings BENCH_USERS=$users BENCH_MOVIES=$movies BENCH_SEED=$seed \
  BENCH_MIN_RATINGS=$min_ratings BENCH_TOP_N=$top_n BENCH_MASTER=$spark_master \
  BENCH_LOAD_BEFORE=$load_before BENCH_LOAD_AFTER=$load_after
python3 - <<'PY'
import json, os, platform, re, statistics, subprocess, sys

sys.path.insert(0, "bench")
from benchlib import gnu_time, sh  # noqa: E402

env = os.environ
out, stamp, file = env["BENCH_OUT"], env["BENCH_STAMP"], env["BENCH_FILE"]
results_dir = os.path.dirname(out)




runs = []
for line in open(os.path.join(out, "runs.tsv")):
    job, run, wall, tf, rc = line.rstrip("\n").split("\t")
    runs.append({"job": job, "run": int(run), "wall_s": float(wall), "exit": int(rc), **gnu_time(tf)})

order = ["read-cat", "read-wc", "movierec", "pyspark"]
labels = {
    "read-cat": "read only: `cat FILE > /dev/null`",
    "read-wc": "read only: `wc -l FILE`",
    "movierec": "movierec `batch csv` (release)",
    "pyspark": f"PySpark 4.3 `{env['BENCH_MASTER']}` (`bench/spark/bayes_top.py`)",
}
summary = {}
for job in order:
    rs = [r for r in runs if r["job"] == job]
    if not rs:
        continue
    walls = [r["wall_s"] for r in rs]
    summary[job] = {
        "runs": len(rs),
        "median_wall_s": statistics.median(walls),
        "min_wall_s": min(walls),
        "max_wall_s": max(walls),
        "median_peak_rss_mib": statistics.median(r["peak_rss_kib"] for r in rs) / 1024,
        "max_peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
        "median_cpu_s": statistics.median(r["user_s"] + r["sys_s"] for r in rs),
    }


def ratio(a, b):
    if a in summary and b in summary and summary[b]["median_wall_s"] > 0:
        return summary[a]["median_wall_s"] / summary[b]["median_wall_s"]
    return None


ratios = {
    "pyspark_over_movierec": ratio("pyspark", "movierec"),
    "movierec_over_read_cat": ratio("movierec", "read-cat"),
    "movierec_over_read_wc": ratio("movierec", "read-wc"),
}
lines = None
wc_log = os.path.join(out, "read-wc-1.log")
if os.path.exists(wc_log):
    m = re.match(r"\s*(\d+)", open(wc_log).read())
    lines = int(m.group(1)) if m else None
parity_rc = int(env["BENCH_PARITY_RC"])
parity_file = os.path.join(out, "parity.txt")
parity = None
if os.path.exists(parity_file):
    parity = {"ok": parity_rc == 0, "report": open(parity_file).read()}
mem_kib = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
cpu_model = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
result = {
    "timestamp": stamp,
    "command": f"bench/run.sh {env['BENCH_ARGS']}",
    "git_commit": sh("git rev-parse HEAD"),
    "git_dirty": bool(sh("git status --porcelain --untracked-files=no")),
    "machine": {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model.group(1) if cpu_model else platform.processor(),
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "loadavg_before": env["BENCH_LOAD_BEFORE"],
        "loadavg_after": env["BENCH_LOAD_AFTER"],
    },
    "versions": {
        "rustc": sh("rustc --version"),
        "python": platform.python_version(),
        "pyspark": sh("python3 -c 'import pyspark; print(pyspark.__version__)'") if "pyspark" in summary else None,
        "java": sh("java -version 2>&1 | head -1") if "pyspark" in summary else None,
    },
    "params": {
        "ratings": int(env["BENCH_RATINGS"]), "users": int(env["BENCH_USERS"]),
        "movies": int(env["BENCH_MOVIES"]), "seed": int(env["BENCH_SEED"]),
        "min_ratings": int(env["BENCH_MIN_RATINGS"]), "top_n": int(env["BENCH_TOP_N"]),
        "spark_master": env["BENCH_MASTER"],
    },
    "input": {"path": file, "bytes": os.path.getsize(file), "lines": lines},
    "runs": runs,
    "summary": summary,
    "ratios": ratios,
    "parity": parity,
    "run_dir": out,
}
json_path = os.path.join(results_dir, f"results-{stamp}.json")
with open(json_path, "w") as f:
    json.dump(result, f, indent=2)


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.1f}x"


size_mib = os.path.getsize(file) / 2**20
head = (f"| job | median wall s | min–max s | peak RSS MiB (median) | CPU s (median) | runs |\n"
        f"| --- | ---: | ---: | ---: | ---: | ---: |")
rows = [
    f"| {labels[j]} | {s['median_wall_s']:.3f} | {s['min_wall_s']:.3f}–{s['max_wall_s']:.3f} | "
    f"{s['median_peak_rss_mib']:.0f} | {s['median_cpu_s']:.2f} | {s['runs']} |"
    for j, s in summary.items()
]
parity_line = ("not checked (no PySpark run)" if parity is None else
               "**OK**: same top-N (ids, order, scores within 1e-9) and same user/movie features"
               if parity["ok"] else "**FAILED**: see `parity.txt` in the run folder")
md = "\n".join([
    f"### Batch benchmark {stamp}",
    "",
    "```sh",
    result["command"],
    "```",
    "",
    f"Input: synthetic `ratings.csv` ({int(env['BENCH_RATINGS']):,} ratings requested, "
    f"{f'{lines - 1:,}' if lines else '?'} lines after the header, {size_mib:.0f} MiB, seed {env['BENCH_SEED']}), "
    f"min_ratings {env['BENCH_MIN_RATINGS']}, top_n {env['BENCH_TOP_N']}. "
    f"Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), "
    f"{result['machine']['mem_gib']} GiB, load average {env['BENCH_LOAD_BEFORE']} before / "
    f"{env['BENCH_LOAD_AFTER']} after. Commit {(result['git_commit'] or '?')[:10]}"
    f"{' (dirty tree)' if result['git_dirty'] else ''}.",
    "",
    head,
    *rows,
    "",
    f"- PySpark / movierec: **{fmt_ratio(ratios['pyspark_over_movierec'])}**; "
    f"movierec / read (`cat`): **{fmt_ratio(ratios['movierec_over_read_cat'])}**; "
    f"movierec / read (`wc -l`): {fmt_ratio(ratios['movierec_over_read_wc'])}.",
    f"- Parity: {parity_line}.",
    "- Wall time: bash clock around each run; peak RSS and CPU: GNU `time -v` (largest single process: "
    "for PySpark that is the JVM, the Python driver adds ~70 MiB). The file is in the page cache.",
    "",
])
md_path = os.path.join(results_dir, f"results-{stamp}.md")
with open(md_path, "w") as f:
    f.write(md)

print(f"input: {file} ({size_mib:.0f} MiB, {lines if lines else '?'} lines)")
print(f"{'job':<10} {'median s':>10} {'min s':>9} {'max s':>9} {'peak MiB':>9} {'CPU s':>8} {'runs':>5}")
for j, s in summary.items():
    print(f"{j:<10} {s['median_wall_s']:>10.3f} {s['min_wall_s']:>9.3f} {s['max_wall_s']:>9.3f} "
          f"{s['median_peak_rss_mib']:>9.0f} {s['median_cpu_s']:>8.2f} {s['runs']:>5}")
print(f"pyspark / movierec:     {fmt_ratio(ratios['pyspark_over_movierec'])}")
print(f"movierec / read (cat):  {fmt_ratio(ratios['movierec_over_read_cat'])}")
print(f"movierec / read (wc):   {fmt_ratio(ratios['movierec_over_read_wc'])}")
print(f"parity:                 {'not checked' if parity is None else 'OK' if parity['ok'] else 'FAILED'}")
print(f"\nwritten: {json_path}\n         {md_path}\n         {out}/ (logs, GNU time output, both outputs)")
PY

[ "$parity_rc" = 0 ] || die "parity check failed: movierec and PySpark outputs differ ($out/parity.txt)"
