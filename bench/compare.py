"""Compares two top-movies.csv files: same ids in the same order, scores within 1e-9."""
import csv
import sys

def load(path):
    with open(path) as f:
        return [(int(r["movie_id"]), float(r["score"])) for r in csv.DictReader(f)]

a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b):
    sys.exit(f"length differs: {len(a)} vs {len(b)}")
for rank, ((ia, sa), (ib, sb)) in enumerate(zip(a, b), 1):
    if ia != ib or abs(sa - sb) > 1e-9:
        sys.exit(f"rank {rank}: {ia} {sa!r} vs {ib} {sb!r}")
print(f"identical top-{len(a)} (ids, order, scores within 1e-9)")
