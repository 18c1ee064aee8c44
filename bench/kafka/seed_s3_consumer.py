#!/usr/bin/env python3
"""The aws-mode baseline: the seed's consumer in storage_mode aws
(seeds/000: Kafka -> consumer -> one S3 object per event under
bronze/user-events/date=YYYY-MM-DD/event_xxx.json; DynamoDB is not updated in
real time there). confluent-kafka consumer group, one message at a time,
json.loads and the same validation as seed_consumer.py, one boto3 put_object
per valid event, offsets auto-committed.

usage: seed_s3_consumer.py --bootstrap HOST:PORT --topic T --group G
                           --endpoint URL --bucket B [--count N] [--timeout S]

Prints one JSON line: {"consumed", "valid", "invalid", "puts", "seconds",
"events_per_s"} (seconds from the first message to the last one processed).
"""
import argparse
import json
import os
import sys
import time
import uuid

import boto3
from confluent_kafka import Consumer, KafkaError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_consumer import Invalid, parse_event  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1")
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([args.topic])
    consumed = valid = invalid = puts = 0
    first = last = None
    last_seen = time.monotonic()
    try:
        while not args.count or consumed < args.count:
            msg = consumer.poll(1.0)
            if msg is None:
                if time.monotonic() - last_seen > args.timeout:
                    break
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}", file=sys.stderr)
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
                date = time.strftime("%Y-%m-%d", time.gmtime(ts_ms / 1000))
                event = json.loads(msg.value())
                s3.put_object(
                    Bucket=args.bucket,
                    Key=f"bronze/user-events/date={date}/event_{uuid.uuid4().hex}.json",
                    Body=json.dumps(event).encode(),
                )
                puts += 1
            last = last_seen = time.monotonic()
    finally:
        consumer.close()
    seconds = (last - first) if first is not None else 0.0
    print(json.dumps({
        "consumed": consumed, "valid": valid, "invalid": invalid, "puts": puts,
        "seconds": seconds, "events_per_s": consumed / seconds if seconds else 0.0,
    }))


if __name__ == "__main__":
    main()
