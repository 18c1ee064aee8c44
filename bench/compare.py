#!/usr/bin/env python3
"""Parity check between two batch outputs (e.g. movierec and the PySpark job).

    compare.py DIR_A DIR_B [--labels movierec pyspark] [--tol 1e-9] [--top-only]
    compare.py TOP_A.csv TOP_B.csv            # two top-movies.csv files only

With folders, compares top-movies.csv, movie-features.csv and user-features.csv:
- top-movies.csv: same number of rows, same movie ids in the same order, score and
  avg_rating within --tol, equal rating_count. Two movies whose scores are within
  --tol of each other are a tie as far as floating point can tell: their order may
  differ (reported as a note) as long as the tied group holds the same ids.
- *-features.csv: the same keys, avg_rating and std_dev within --tol, equal
  rating_count and last_update (ISO-8601 UTC or epoch seconds, compared as instants).
Exits 0 when everything matches, 1 with the differences listed otherwise, 2 on a
missing or malformed file.
"""
import argparse
import csv
import datetime as dt
import os
import sys

MAX_SHOWN = 10


def fail_input(msg):
    print(f"compare.py: {msg}", file=sys.stderr)
    sys.exit(2)


def read_rows(path, columns):
    if not os.path.isfile(path):
        fail_input(f"no such file: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            fail_input(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        rows = []
        for line, r in enumerate(reader, 2):
            try:
                rows.append({c: r[c] for c in columns})
            except (KeyError, TypeError):
                fail_input(f"{path}:{line}: short row {r}")
        return rows


def num(path, row, col, conv=float):
    try:
        return conv(row[col])
    except (TypeError, ValueError):
        fail_input(f"{path}: bad {col} value {row[col]!r} in {row}")


def instant(value):
    """Epoch seconds from '2000-07-30T18:45:03Z' (or with an offset) or from '964982703'."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


class Report:
    def __init__(self, name):
        self.name, self.problems, self.notes = name, [], []

    def problem(self, msg):
        self.problems.append(msg)

    def show(self):
        status = "OK  " if not self.problems else "DIFF"
        print(f"[{status}] {self.name}")
        for n in self.notes:
            print(f"       note: {n}")
        for p in self.problems[:MAX_SHOWN]:
            print(f"       {p}")
        if len(self.problems) > MAX_SHOWN:
            print(f"       ... and {len(self.problems) - MAX_SHOWN} more differences")
        return not self.problems


def compare_top(path_a, path_b, la, lb, tol):
    cols = ["movie_id", "score", "avg_rating", "rating_count"]
    ra, rb = read_rows(path_a, cols), read_rows(path_b, cols)
    rep = Report(f"top-movies.csv: {len(ra)} ({la}) vs {len(rb)} ({lb}) rows")
    a = [(num(path_a, r, "movie_id", int), num(path_a, r, "score"), num(path_a, r, "avg_rating"),
          num(path_a, r, "rating_count", int)) for r in ra]
    b = [(num(path_b, r, "movie_id", int), num(path_b, r, "score"), num(path_b, r, "avg_rating"),
          num(path_b, r, "rating_count", int)) for r in rb]
    if len(a) != len(b):
        rep.problem(f"row count differs: {la} {len(a)}, {lb} {len(b)}")
    n = min(len(a), len(b))
    max_diff = 0.0
    by_id_b = {x[0]: x for x in b}
    # Order: walk the ranks; where the ids differ, accept a reordering inside a group
    # of scores that are equal within tol (same ids in the group on both sides).
    i = 0
    while i < n:
        if a[i][0] == b[i][0]:
            i += 1
            continue
        j = i + 1
        while j < n and (abs(a[j][1] - a[i][1]) <= tol or abs(b[j][1] - b[i][1]) <= tol):
            j += 1
        ga, gb = sorted(x[0] for x in a[i:j]), sorted(x[0] for x in b[i:j])
        if j > i + 1 and ga == gb and all(abs(x[1] - a[i][1]) <= tol for x in a[i:j] + b[i:j]):
            rep.notes.append(f"ranks {i + 1}-{j}: scores tie within {tol:g}; order differs "
                             f"({[x[0] for x in a[i:j]]} vs {[x[0] for x in b[i:j]]})")
        else:
            rep.problem(f"rank {i + 1}: {la} has movie {a[i][0]} (score {a[i][1]!r}), "
                        f"{lb} has movie {b[i][0]} (score {b[i][1]!r})")
        i = j
    for rank, x in enumerate(a[:n], 1):
        y = by_id_b.get(x[0])
        if y is None:
            continue  # already reported as an order/id difference
        d = abs(x[1] - y[1])
        max_diff = max(max_diff, d)
        if d > tol:
            rep.problem(f"rank {rank}, movie {x[0]}: score {x[1]!r} vs {y[1]!r} (|diff| {d:.3g} > {tol:g})")
        if abs(x[2] - y[2]) > tol:
            rep.problem(f"rank {rank}, movie {x[0]}: avg_rating {x[2]!r} vs {y[2]!r}")
        if x[3] != y[3]:
            rep.problem(f"rank {rank}, movie {x[0]}: rating_count {x[3]} vs {y[3]}")
    rep.name += f", max |score diff| {max_diff:.3g}"
    return rep.show()


def compare_features(path_a, path_b, key, la, lb, tol):
    cols = [key, "avg_rating", "rating_count", "std_dev", "last_update"]
    ra, rb = read_rows(path_a, cols), read_rows(path_b, cols)
    name = os.path.basename(path_a)

    def index(path, rows):
        out = {}
        for r in rows:
            k = num(path, r, key, int)
            if k in out:
                fail_input(f"{path}: {key} {k} appears twice")
            out[k] = (num(path, r, "avg_rating"), num(path, r, "rating_count", int),
                      num(path, r, "std_dev"), r["last_update"])
        return out

    a, b = index(path_a, ra), index(path_b, rb)
    rep = Report(f"{name}: {len(a)} ({la}) vs {len(b)} ({lb}) {key}s")
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a:
        rep.problem(f"{len(only_a)} {key}s only in {la}: {only_a[:MAX_SHOWN]}")
    if only_b:
        rep.problem(f"{len(only_b)} {key}s only in {lb}: {only_b[:MAX_SHOWN]}")
    max_avg = max_sd = 0.0
    for k in sorted(a.keys() & b.keys()):
        (xa, xc, xs, xt), (ya, yc, ys, yt) = a[k], b[k]
        da, ds = abs(xa - ya), abs(xs - ys)
        max_avg, max_sd = max(max_avg, da), max(max_sd, ds)
        diffs = []
        if xc != yc:
            diffs.append(f"rating_count {xc} vs {yc}")
        if da > tol:
            diffs.append(f"avg_rating {xa!r} vs {ya!r}")
        if ds > tol:
            diffs.append(f"std_dev {xs!r} vs {ys!r}")
        ta, tb = instant(xt), instant(yt)
        if ta is None or tb is None or ta != tb:
            diffs.append(f"last_update {xt!r} vs {yt!r}")
        if diffs:
            rep.problem(f"{key} {k}: " + "; ".join(diffs))
    rep.name += f", max |diff| avg {max_avg:.3g}, std_dev {max_sd:.3g}"
    return rep.show()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="output folder (or top-movies.csv) of the first engine")
    p.add_argument("b", help="output folder (or top-movies.csv) of the second engine")
    p.add_argument("--labels", nargs=2, default=None, metavar=("A", "B"))
    p.add_argument("--tol", type=float, default=1e-9, help="absolute tolerance for floats (default 1e-9)")
    p.add_argument("--top-only", action="store_true", help="skip the feature files")
    args = p.parse_args()
    la, lb = args.labels or (args.a, args.b)
    for path in (args.a, args.b):
        if not os.path.exists(path):
            fail_input(f"no such file or folder: {path}")
    dirs = os.path.isdir(args.a), os.path.isdir(args.b)
    if dirs[0] != dirs[1]:
        fail_input("give two folders or two top-movies.csv files")
    ok = True
    if dirs[0]:
        ok &= compare_top(os.path.join(args.a, "top-movies.csv"), os.path.join(args.b, "top-movies.csv"), la, lb, args.tol)
        if not args.top_only:
            for name, key in (("movie-features.csv", "movie_id"), ("user-features.csv", "user_id")):
                ok &= compare_features(os.path.join(args.a, name), os.path.join(args.b, name), key, la, lb, args.tol)
    else:
        ok &= compare_top(args.a, args.b, la, lb, args.tol)
    if ok:
        print(f"PARITY OK: {la} and {lb} agree (floats within {args.tol:g})")
        return 0
    print(f"PARITY FAILED: {la} and {lb} differ (see above)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
