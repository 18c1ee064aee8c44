//! The feature tables' DynamoDB Streams and scans, against moto
//! (scripts/test.sh starts it and sets MOVIEREC_TEST_AWS_ENDPOINT). One test
//! in this binary: it sets the AWS credential variables, which no other
//! thread reads meanwhile.
//!
//! moto keeps one shard per table and never splits it: shard lineage is
//! tested by the unit tests in src/streams.rs.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use movierec_aws::{Aws, DynamoDbChangeStream, DynamoDbTableScan};
use movierec_config::AwsConfig;
use movierec_export::{Change, ChangeStream, FeatureTable, Op, TableScan};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

const USERS: u64 = 3000;
const MOVIES: u64 = 1000;
const UPDATED_USERS: u64 = 50;
const UPDATED_MOVIES: u64 = 20;
const DELETED_USER: u64 = 3000;
/// Its rating_count is a string: it must reach the warehouse as it is.
const ODD_USER: u64 = 17;

fn item(key: &str, id: u64) -> HashMap<String, AttributeValue> {
    let n = |v: String| AttributeValue::N(v);
    let rating_count = if key == "user_id" && id == ODD_USER {
        AttributeValue::S("many".into())
    } else {
        n((id % 50 + 1).to_string())
    };
    HashMap::from([
        (key.to_string(), n(id.to_string())),
        ("rating_count".to_string(), rating_count),
        ("avg_rating".to_string(), n(format!("{}.5", id % 4 + 1))),
        ("std_dev".to_string(), n(format!("0.{}", id % 997))),
        (
            "last_update".to_string(),
            AttributeValue::S(format!("2025-03-15T10:{:02}:00Z", id % 60)),
        ),
        ("version".to_string(), n("1".into())),
        ("sum_half".to_string(), n((id * 3).to_string())),
    ])
}

async fn put_items(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    ids: impl Iterator<Item = u64>,
) {
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|&id| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item(key, id)))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let out = dynamodb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .unwrap();
            requests = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
    }
}

async fn update_avg(dynamodb: &aws_sdk_dynamodb::Client, table: &str, key: &str, id: u64) {
    dynamodb
        .update_item()
        .table_name(table)
        .key(key, AttributeValue::N(id.to_string()))
        .update_expression("SET avg_rating = :avg, version = version + :one")
        .expression_attribute_values(":avg", AttributeValue::N("2.25".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
}

/// Polls until a poll returns nothing; checks each poll keeps to `max`.
async fn drain(stream: &mut DynamoDbChangeStream, max: usize) -> Vec<Change> {
    let mut all = Vec::new();
    loop {
        let changes = stream.poll(max).await.unwrap();
        assert!(
            changes.len() <= max,
            "{} changes for max {max}",
            changes.len()
        );
        if changes.is_empty() {
            return all;
        }
        all.extend(changes);
    }
}

/// Every page of a table, each resumed after the previous page's key.
async fn scan_all(scan: &mut DynamoDbTableScan, table: FeatureTable) -> (Vec<Change>, usize) {
    let mut all = Vec::new();
    let mut after: Option<Value> = None;
    let mut pages = 0;
    loop {
        let (changes, next) = scan.page(table, after.clone(), 500).await.unwrap();
        assert!(changes.len() <= 500);
        pages += 1;
        all.extend(changes);
        match next {
            Some(key) => {
                assert!(
                    key.get(table.key_column()).is_some_and(Value::is_string),
                    "{key}"
                );
                after = Some(key);
            }
            None => return (all, pages),
        }
        assert!(pages < 1000, "the scan does not end");
    }
}

fn count(changes: &[Change], table: FeatureTable) -> usize {
    changes.iter().filter(|c| c.table == table).count()
}

#[tokio::test]
async fn the_feature_streams_and_scans_carry_every_change_once() {
    let endpoint = std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto), or \
             moto_server -H 127.0.0.1 -p 5000 and MOVIEREC_TEST_AWS_ENDPOINT=http://127.0.0.1:5000"
        )
    });
    // SAFETY: the only test in this binary, before any other thread reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let mut config = AwsConfig {
        region: "eu-west-1".into(),
        endpoint_url: Some(endpoint.clone()),
        ..AwsConfig::default()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "streams-test-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    config.s3.bucket = name.clone();
    config.dynamodb.user_features_table = format!("{name}-u");
    config.dynamodb.movie_features_table = format!("{name}-m");
    config.dynamodb.ratings_table = format!("{name}-r");
    let users = config.dynamodb.user_features_table.clone();
    let movies = config.dynamodb.movie_features_table.clone();
    let aws = Aws::connect(&config).await.unwrap();
    aws.setup(false).await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&endpoint)
            .load()
            .await,
    );

    // A table without a stream (the ratings table) names the fix.
    let mut unstreamed = config.clone();
    unstreamed.dynamodb.user_features_table = config.dynamodb.ratings_table.clone();
    let mut stream = DynamoDbChangeStream::new(&Aws::connect(&unstreamed).await.unwrap());
    let error = stream.resume(None).await.unwrap_err().to_string();
    assert!(error.contains("movierec setup-aws"), "{error}");
    let error = stream.poll(10).await.unwrap_err().to_string();
    assert!(error.contains("resume"), "{error}");

    // Inserts, updates and a delete on both tables.
    put_items(&dynamodb, &users, "user_id", 1..=USERS).await;
    put_items(&dynamodb, &movies, "movie_id", 1..=MOVIES).await;
    for id in 1..=UPDATED_USERS {
        update_avg(&dynamodb, &users, "user_id", id).await;
    }
    for id in 1..=UPDATED_MOVIES {
        update_avg(&dynamodb, &movies, "movie_id", id).await;
    }
    dynamodb
        .delete_item()
        .table_name(&users)
        .key("user_id", AttributeValue::N(DELETED_USER.to_string()))
        .send()
        .await
        .unwrap();

    // The stream from its start: every change, once, in order per key.
    let mut stream = DynamoDbChangeStream::new(&aws);
    stream.resume(None).await.unwrap();
    assert!(stream.describe().contains(&users), "{}", stream.describe());
    let changes = drain(&mut stream, 777).await;
    let user_changes = (USERS + UPDATED_USERS + 1) as usize;
    let movie_changes = (MOVIES + UPDATED_MOVIES) as usize;
    assert_eq!(count(&changes, FeatureTable::UserFeatures), user_changes);
    assert_eq!(count(&changes, FeatureTable::MovieFeatures), movie_changes);
    let mut latest: BTreeMap<(FeatureTable, String), Change> = BTreeMap::new();
    for change in &changes {
        let key = (change.table, change.key.clone());
        if let Some(previous) = latest.get(&key) {
            let (before, now) = (
                previous.version.parse::<u64>().unwrap(),
                change.version.parse::<u64>().unwrap(),
            );
            assert!(before <= now, "{key:?}: version {now} after {before}");
        }
        assert!(change.source_bytes > 0);
        latest.insert(key, change.clone());
    }
    let deleted = &latest[&(FeatureTable::UserFeatures, DELETED_USER.to_string())];
    assert_eq!(deleted.op, Op::Delete);
    assert_eq!(deleted.version, "1");
    assert!(deleted.values.is_empty());
    let odd = &latest[&(FeatureTable::UserFeatures, ODD_USER.to_string())];
    assert_eq!(odd.values[0], "many");
    assert_eq!(odd.version, "2", "updated once");
    assert_eq!(odd.values[1], "2.25");
    let plain = &latest[&(FeatureTable::MovieFeatures, "500".to_string())];
    assert_eq!(
        (plain.op, plain.version.as_str(), plain.values.clone()),
        (
            Op::Upsert,
            "1",
            vec![
                "1".to_string(),
                "1.5".to_string(),
                "0.500".to_string(),
                "2025-03-15T10:20:00Z".to_string()
            ]
        )
    );

    // The scan, 500 at a time: every item once, equal to the stream's latest.
    let mut scan = DynamoDbTableScan::new(&aws);
    for (table, items) in [
        (FeatureTable::UserFeatures, USERS - 1),
        (FeatureTable::MovieFeatures, MOVIES),
    ] {
        let (scanned, pages) = scan_all(&mut scan, table).await;
        assert_eq!(scanned.len() as u64, items, "{table:?}");
        assert!(pages >= (items as usize).div_ceil(500), "{pages} pages");
        let mut seen = std::collections::BTreeSet::new();
        for item in &scanned {
            assert!(seen.insert(item.key.clone()), "{} scanned twice", item.key);
            assert_eq!(item.op, Op::Upsert);
            let streamed = &latest[&(table, item.key.clone())];
            assert_eq!(
                (streamed.op, &streamed.version, &streamed.values),
                (item.op, &item.version, &item.values),
                "{table:?} {}",
                item.key
            );
        }
        let upserts = latest
            .iter()
            .filter(|((t, _), c)| *t == table && c.op == Op::Upsert)
            .count();
        assert_eq!(upserts, scanned.len());
    }

    // Lag against the checkpoint: one open shard per table, at a position.
    let checkpoint = stream.checkpoint();
    let tables = checkpoint["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 2, "{checkpoint}");
    let lags = stream.lag(Some(&checkpoint)).await.unwrap();
    assert_eq!(lags.len(), 2, "{lags:?}");
    for lag in &lags {
        assert_eq!(lag.state, "open", "{lag:?}");
        assert!(lag.position.is_some(), "{lag:?}");
        assert!(
            lag.shard.starts_with(&users) || lag.shard.starts_with(&movies),
            "{lag:?}"
        );
    }
    assert!(
        stream
            .lag(None)
            .await
            .unwrap()
            .iter()
            .all(|l| l.position.is_none())
    );
    stream.release(&checkpoint).await.unwrap();

    // Resumed from the checkpoint: only what came after it.
    let mut resumed = DynamoDbChangeStream::new(&aws);
    resumed.resume(Some(checkpoint.clone())).await.unwrap();
    assert_eq!(resumed.checkpoint(), checkpoint);
    assert!(resumed.poll(100).await.unwrap().is_empty());
    put_items(&dynamodb, &users, "user_id", 5001..=5100).await;
    let after = drain(&mut resumed, 1000).await;
    assert_eq!(after.len(), 100, "{:?}", &after[..after.len().min(3)]);
    let keys: Vec<u64> = after.iter().map(|c| c.key.parse().unwrap()).collect();
    assert_eq!(keys, (5001..=5100).collect::<Vec<_>>());
    assert!(
        after
            .iter()
            .all(|c| c.table == FeatureTable::UserFeatures && c.op == Op::Upsert)
    );
    let moved = resumed.checkpoint();
    assert_ne!(
        moved["tables"][&users]["shards"], checkpoint["tables"][&users]["shards"],
        "the users' position moved"
    );
    assert_eq!(
        moved["tables"][&movies], checkpoint["tables"][&movies],
        "the movies' did not"
    );

    // A checkpoint of another stream (re-enabled): that table starts over.
    let mut other = moved.clone();
    other["tables"][&movies]["stream_arn"] = json!(format!(
        "{}-old",
        moved["tables"][&movies]["stream_arn"].as_str().unwrap()
    ));
    let mut restarted = DynamoDbChangeStream::new(&aws);
    restarted.resume(Some(other)).await.unwrap();
    let again = drain(&mut restarted, 1000).await;
    assert_eq!(count(&again, FeatureTable::MovieFeatures), movie_changes);
    assert_eq!(count(&again, FeatureTable::UserFeatures), 0);

    aws.teardown().await.unwrap();
}
