#!/usr/bin/env python3
"""The ingestion baseline: a rating-event consumer written the way the seed's
Python stack does it (confluent-kafka consumer group, one message at a time,
json.loads, validate, one SQLite write and one commit per event).

For each message: parse and validate (user_id and movie_id positive integers,
rating 0.5 to 5.0 in steps of 0.5, timestamp ISO-8601 or epoch seconds); an
invalid message is only counted. A valid one is upserted into
ratings(user_id, movie_id, rating_half, ts_ms) (the latest timestamp wins; a
tie goes to the later message), user_features and movie_features are updated
(rating_count, sum_half, sum_sq_quarter, last_update_ms; a re-rating subtracts
the old rating first; an event older than the stored rating changes nothing),
and the connection commits. Kafka offsets are auto-committed (the client's
default), as the seed does.

usage: seed_consumer.py --bootstrap 127.0.0.1:9092 --topic T --group G --db PATH
                        [--count N] [--timeout S] [--journal default|wal]

Stops after N messages (N=0: no limit) or after S seconds without a message
(default 30). Prints one JSON line:
  {"consumed", "valid", "invalid", "applied", "stale", "seconds", "events_per_s",
   "seconds_total", "timed_out", "journal"}
where seconds runs from the first message received to the last one processed,
and seconds_total from start-up (so it includes the group join). Exits 1 if it
timed out before N messages.
"""
import argparse
import datetime as dt
import json
import math
import os
import sqlite3
import sys
import time

from confluent_kafka import Consumer, KafkaError

MAX_EVENT_BYTES = 64 * 1024
MAX_ID = 2**63 - 1
MAX_MILLIS = 253_402_300_799_000  # 9999-12-31T23:59:59Z

# The store's own schema, so the baseline writes exactly the tables movierec does.
SCHEMA_FILE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "store", "migrations", "store-sqlite", "0001_store.sql"
)


class Invalid(Exception):
    pass


def parse_id(event, name):
    value = event.get(name)
    if value is None:
        raise Invalid(f"missing {name}")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise Invalid(f"{name} must be a positive integer")
    return value


def parse_rating(event):
    value = event.get("rating")
    if value is None:
        raise Invalid("missing rating")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("rating must be a number")
    value = float(value)
    if not math.isfinite(value) or not 0.5 <= value <= 5.0:
        raise Invalid("rating out of range")
    doubled = value * 2
    if doubled != int(doubled):
        raise Invalid("rating is not a multiple of 0.5")
    return int(doubled)


def epoch_ms(seconds):
    ms = round(seconds * 1000)
    if not 0 <= ms <= MAX_MILLIS:
        raise Invalid("timestamp out of range")
    return ms


def parse_timestamp(event):
    value = event.get("timestamp")
    if value is None:
        raise Invalid("missing timestamp")
    if isinstance(value, bool):
        raise Invalid("timestamp must be a string or a number")
    if isinstance(value, int):
        return epoch_ms(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("timestamp out of range")
        return epoch_ms(value)
    if not isinstance(value, str):
        raise Invalid("timestamp must be a string or a number")
    text = value.strip()
    if text.isdigit():
        return epoch_ms(int(text))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Invalid("timestamp is not ISO-8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return epoch_ms(parsed.timestamp())


def parse_event(payload):
    if payload is None:
        raise Invalid("empty message")
    if len(payload) > MAX_EVENT_BYTES:
        raise Invalid("oversized")
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("bad JSON") from None
    if not isinstance(event, dict):
        raise Invalid("not an object")
    return parse_id(event, "user_id"), parse_id(event, "movie_id"), parse_rating(event), parse_timestamp(event)


def bump_features(conn, table, key, key_value, count_delta, half_delta, sq_delta, ts_ms):
    conn.execute(
        f"INSERT INTO {table} ({key}, rating_count, sum_half, sum_sq_quarter, last_update_ms) "
        f"VALUES (?, ?, ?, ?, ?) ON CONFLICT({key}) DO UPDATE SET "
        f"rating_count = rating_count + excluded.rating_count, "
        f"sum_half = sum_half + excluded.sum_half, "
        f"sum_sq_quarter = sum_sq_quarter + excluded.sum_sq_quarter, "
        f"last_update_ms = MAX(last_update_ms, excluded.last_update_ms)",
        (key_value, count_delta, half_delta, sq_delta, ts_ms),
    )


def apply_event(conn, user_id, movie_id, half, ts_ms):
    """One event, one transaction. Returns False for a stale event (older than the stored one)."""
    row = conn.execute(
        "SELECT rating_half, ts_ms FROM ratings WHERE user_id = ? AND movie_id = ?", (user_id, movie_id)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO ratings (user_id, movie_id, rating_half, ts_ms) VALUES (?, ?, ?, ?)",
            (user_id, movie_id, half, ts_ms),
        )
        deltas = (1, half, half * half)
    else:
        old_half, old_ts = row
        if ts_ms < old_ts:
            return False
        conn.execute(
            "UPDATE ratings SET rating_half = ?, ts_ms = ? WHERE user_id = ? AND movie_id = ?",
            (half, ts_ms, user_id, movie_id),
        )
        deltas = (0, half - old_half, half * half - old_half * old_half)
    bump_features(conn, "user_features", "user_id", user_id, *deltas, ts_ms)
    bump_features(conn, "movie_features", "movie_id", movie_id, *deltas, ts_ms)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--count", type=int, default=0, help="stop after N messages (0: no limit)")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up after S seconds without a message")
    ap.add_argument("--journal", choices=["default", "wal"], default="default",
                    help="default: sqlite3.connect() as is (rollback journal, synchronous=FULL), as the seed; "
                         "wal: journal_mode=WAL, synchronous=NORMAL, as movierec's store")
    args = ap.parse_args()

    started = time.monotonic()
    if os.path.dirname(args.db):
        os.makedirs(os.path.dirname(args.db), exist_ok=True)
    conn = sqlite3.connect(args.db)
    if args.journal == "wal":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    with open(SCHEMA_FILE) as schema:
        conn.executescript(schema.read())
    conn.commit()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    consumer.subscribe([args.topic])

    consumed = valid = invalid = applied = stale = 0
    first = last = None
    last_seen = time.monotonic()
    timed_out = False
    try:
        while not args.count or consumed < args.count:
            msg = consumer.poll(1.0)
            if msg is None:
                if time.monotonic() - last_seen > args.timeout:
                    timed_out = True
                    break
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                if msg.error().fatal():
                    break
                continue
            if first is None:
                first = time.monotonic()
            consumed += 1
            try:
                user_id, movie_id, half, ts_ms = parse_event(msg.value())
            except Invalid:
                invalid += 1
            else:
                valid += 1
                if apply_event(conn, user_id, movie_id, half, ts_ms):
                    applied += 1
                else:
                    stale += 1
                conn.commit()
            last = last_seen = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # commits the consumed offsets (auto commit) and leaves the group
        conn.close()

    seconds = (last - first) if first is not None else 0.0
    print(json.dumps({
        "consumed": consumed,
        "valid": valid,
        "invalid": invalid,
        "applied": applied,
        "stale": stale,
        "seconds": round(seconds, 3),
        "events_per_s": round(consumed / seconds, 1) if seconds > 0 else None,
        "seconds_total": round(time.monotonic() - started, 3),
        "timed_out": timed_out,
        "journal": args.journal,
    }), flush=True)
    if timed_out and args.count and consumed < args.count:
        print(f"timed out after {args.timeout:g} s without a message: {consumed} of {args.count} consumed",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
