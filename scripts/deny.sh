#!/usr/bin/env bash
# The dependency policy in deny.toml, checked with cargo-deny:
#   licenses  every crate linked into movierec under a permissive license;
#   bans      no wildcard versions, no OpenSSL (rustls only);
#   sources   crates from crates.io only, no git or other registries;
#   advisories  no crate with a RustSec advisory (security hole, unsound, yanked).
#
# usage: scripts/deny.sh [--install-only]
# Installs cargo-deny (pinned, from crates.io, ~5 min on 2 cores) if missing.
# The advisory database lives on github.com: when it cannot be fetched, an
# earlier copy (~/.cargo/advisory-dbs, from any earlier run that reached it)
# is used; with none, the run says in capitals that advisories were NOT
# checked, and fails if MOVIEREC_REQUIRE_ADVISORIES=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=0.20.2
cargo_home=${CARGO_HOME:-${HOME:-/root}/.cargo}
case ":$PATH:" in *":$cargo_home/bin:"*) ;; *) PATH="$cargo_home/bin:$PATH" ;; esac

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $version" ]; then
  echo "installing cargo-deny $version"
  cargo install --quiet --locked --force cargo-deny --version "$version"
fi
[ "${1:-}" = "--install-only" ] && exit 0

cargo deny --version
cargo deny --locked check licenses bans sources

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if cargo deny --locked check advisories 2>"$log"; then
  echo "advisories ok (RustSec database fetched now)"
  exit 0
fi
if ! grep -q "failed to fetch advisory database" "$log"; then
  cat "$log" >&2
  exit 1
fi
db=$(ls -d "$cargo_home"/advisory-dbs/*/ 2>/dev/null | head -1 || true)
if [ -n "$db" ] && [ -d "$db/crates" ]; then
  echo "the RustSec database could not be fetched; using the copy in $db ($(git -C "$db" log -1 --format=%cs 2>/dev/null || echo 'date unknown'))"
  cargo deny --locked --offline check advisories
  exit 0
fi
grep -m1 -i "fatal\|error" "$log" >&2 || true
echo "ADVISORIES NOT CHECKED: the RustSec database (https://github.com/RustSec/advisory-db) cannot be reached from this machine and no earlier copy is in $cargo_home/advisory-dbs." >&2
echo "Run scripts/deny.sh once where github.com is reachable (the copy is kept), or set MOVIEREC_REQUIRE_ADVISORIES=1 to make this an error." >&2
[ "${MOVIEREC_REQUIRE_ADVISORIES:-0}" = 1 ] && exit 1
exit 0
