#!/usr/bin/env bash
# The dependency policy in deny.toml, checked with cargo-deny:
#   licenses  every crate linked into movierec under a permissive license;
#   bans      no wildcard versions, no OpenSSL (rustls only);
#   sources   crates from crates.io only, no git or other registries;
#   advisories  no crate with a RustSec advisory (security hole, unsound, yanked).
#
# usage: scripts/deny.sh [--install-only]
# Installs cargo-deny (pinned, from crates.io, ~5 min on 2 cores) if missing.
# The advisory database lives on github.com. Where it cannot be fetched, the
# check uses, in this order: an earlier copy (~/.cargo/advisory-dbs, from any
# run that reached GitHub), then the snapshot committed in deny/advisory-db
# (the advisories of every crate in deny/advisory-db/looked-up.txt, as of the
# date in its README). A crate in Cargo.lock that the snapshot never looked
# up fails the check: look it up and record it (deny/advisory-db/README.md).
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
  cargo fetch --locked --quiet
  cargo deny --locked --offline check advisories
  exit 0
fi

snapshot=deny/advisory-db
snapshot_date=$(sed -n 's/^Snapshot date: *//p' "$snapshot/README.md")
echo "the RustSec database could not be fetched (github.com out of reach); checking against the snapshot in $snapshot (advisories to $snapshot_date)"
# Crates that nobody looked up in the snapshot are not covered by it.
unchecked=$(comm -23 \
  <(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.lock | grep -v '^movierec' | sort -u) \
  <(grep -v '^#' "$snapshot/looked-up.txt" | sort -u) | tr '\n' ' ')
# cargo-deny reads its database as a git checkout in db-path, in a folder named
# after the database URL (this name is cargo-deny 0.20's for RustSec's URL).
tmp=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$tmp"' EXIT
copy="$tmp/dbs/advisory-db-3157b0e258782691"
mkdir -p "$tmp/dbs"
cp -r "$snapshot" "$copy"
git -C "$copy" init --quiet
git -C "$copy" add --all
GIT_COMMITTER_DATE="$snapshot_date 00:00:00 +0000" git -C "$copy" \
  -c user.name=movierec -c user.email=movierec@localhost \
  commit --quiet --date "$snapshot_date 00:00:00 +0000" -m "RustSec snapshot $snapshot_date"
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$tmp/dbs\"|" deny.toml >"$tmp/deny.toml"
# --offline keeps cargo-deny off GitHub; cargo metadata then needs every
# platform's crates downloaded, which crates.io allows.
cargo fetch --locked --quiet
cargo deny --locked --offline --config "$tmp/deny.toml" check advisories
echo "advisories ok against the snapshot of $snapshot_date ($(find "$snapshot/crates" -name 'RUSTSEC-*.md' | wc -l) advisories; later ones are not covered)"
if [ -n "$unchecked" ]; then
  echo "ADVISORIES NOT CHECKED for crates the snapshot never looked up: $unchecked" >&2
  echo "Look each up in RustSec's database and record it as deny/advisory-db/README.md says." >&2
  exit 1
fi
