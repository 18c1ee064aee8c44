#!/usr/bin/env bash
# The fuzz targets in fuzz/ (cargo-fuzz, libFuzzer): for each,
# replays the regression inputs in fuzz/regressions/<target>/ (crashes found
# before, kept), then fuzzes for a bounded time from a seed corpus.
#
# usage: scripts/fuzz.sh [--seconds 30] [--optimized] [TARGET…]   (default: every target)
# Builds unoptimized by default (about 3 min here against 7+ for an
# optimized build, which pays off only for long runs: --optimized).
# Installs cargo-fuzz if missing. Builds with the project's own (stable)
# toolchain and RUSTC_BOOTSTRAP=1 for the sanitizer flags, so no nightly
# toolchain has to be fetched. A crash fails the run; its input is in fuzz/artifacts/<target>/:
# fix the bug, then copy the input to fuzz/regressions/<target>/.
# Figures (runs, corpus size) go to fuzz/artifacts/summary.tsv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=30
profile=(--dev)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || { echo "--seconds needs a value" >&2; exit 2; }; seconds=$2; shift 2;;
    --optimized) profile=(); shift;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) targets+=("$1"); shift;;
  esac
done
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] || { echo "--seconds must be a positive whole number, got '$seconds'" >&2; exit 2; }
cargo_bin=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
echo "$(rustc --version) with RUSTC_BOOTSTRAP=1; $(cargo fuzz --version)"

cd fuzz
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
mkdir -p artifacts
: >artifacts/summary.tsv
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
  # Seeds: the regression inputs and the committed examples.
  cp -n regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  echo "==== $target: replaying $(ls "regressions/$target" | wc -l) regression inputs"
  cargo fuzz run "${profile[@]}" "$target" "regressions/$target" -- -runs=0 >"artifacts/$target.replay.log" 2>&1 \
    || { tail -40 "artifacts/$target.replay.log"; echo "FAIL: a regression input of $target crashes again"; exit 1; }
  echo "==== $target: fuzzing for $seconds s"
  log=artifacts/$target.log
  if ! cargo fuzz run "${profile[@]}" "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 \
      -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
    tail -60 "$log"
    echo "FAIL: $target crashed; the input is in fuzz/$(ls -t artifacts/"$target"/* | head -1)"
    exit 1
  fi
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
  printf '%s\t%s\t%s\t%s\n' "$target" "$seconds" "$runs" "$(ls "corpus/$target" | wc -l)" >>artifacts/summary.tsv
  echo "$target: $runs inputs in $seconds s, no crash; corpus $(ls "corpus/$target" | wc -l) inputs"
done
