#!/usr/bin/env python3
"""A small confluent-kafka producer of synthetic rating events, for testing the
consumers and for `bench/ingest.sh --baseline-only` (before `movierec produce`
exists; otherwise the harness produces with `movierec produce`).

Events are JSON objects {"user_id", "movie_id", "rating", "timestamp"} keyed by
user id (so one user's events stay in order on one partition); the timestamp is
ISO-8601 or epoch seconds, half and half. A fraction of the events is invalid,
of several kinds (bad JSON, not an object, a missing field, id 0, rating out of
range or off the half-step, an unparseable timestamp).

usage: produce_events.py --bootstrap 127.0.0.1:9092 --topic T --count N
                         [--invalid-fraction 0.01] [--seed 42]
                         [--users 5000] [--movies 2000]

It prints one JSON line: what it produced, and what a correct consumer must end
with (valid/invalid counts, distinct (user, movie) pairs, the sum of the latest
ratings in half stars).
"""
import argparse
import datetime as dt
import json
import random
import sys
import time

from confluent_kafka import Producer

BASE_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
SPAN_S = 5 * 365 * 86400


def invalid_payload(rng, user, movie, ts):
    kind = rng.randrange(7)
    if kind == 0:
        return b'{"user_id": 1, "movie_id": '  # truncated JSON
    if kind == 1:
        return b"[1, 2, 3]"
    if kind == 2:
        return json.dumps({"movie_id": movie, "rating": 4.0, "timestamp": ts}).encode()
    if kind == 3:
        return json.dumps({"user_id": 0, "movie_id": movie, "rating": 4.0, "timestamp": ts}).encode()
    if kind == 4:
        return json.dumps({"user_id": user, "movie_id": movie, "rating": 7.0, "timestamp": ts}).encode()
    if kind == 5:
        return json.dumps({"user_id": user, "movie_id": movie, "rating": 4.2, "timestamp": ts}).encode()
    return json.dumps({"user_id": user, "movie_id": movie, "rating": 3.5, "timestamp": "soon"}).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--invalid-fraction", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--movies", type=int, default=2000)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "none",
        "acks": "all",
    })
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(str(err))

    latest = {}  # (user, movie) -> (ts_ms, half): what a latest-wins consumer ends with
    valid = invalid = 0
    start = time.monotonic()
    for _ in range(args.count):
        user = rng.randint(1, args.users)
        movie = rng.randint(1, args.movies)
        epoch = BASE_EPOCH + rng.randrange(SPAN_S)
        if rng.random() < 0.5:
            ts = epoch
        else:
            ts = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        if rng.random() < args.invalid_fraction:
            payload = invalid_payload(rng, user, movie, ts)
            invalid += 1
        else:
            half = rng.randint(1, 10)
            payload = json.dumps({"user_id": user, "movie_id": movie, "rating": half / 2, "timestamp": ts}).encode()
            valid += 1
            old = latest.get((user, movie))
            if old is None or epoch * 1000 >= old[0]:
                latest[(user, movie)] = (epoch * 1000, half)
        while True:
            try:
                producer.produce(args.topic, payload, key=str(user).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    seconds = time.monotonic() - start
    if remaining or failures:
        print(f"produce failed: {remaining} not delivered, {len(failures)} errors, first: {failures[:1]}",
              file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "produced": args.count,
        "valid": valid,
        "invalid": invalid,
        "distinct_pairs": len(latest),
        "latest_sum_half": sum(h for _, h in latest.values()),
        "seconds": round(seconds, 3),
        "events_per_s": round(args.count / seconds, 1) if seconds > 0 else None,
    }), flush=True)


if __name__ == "__main__":
    main()
