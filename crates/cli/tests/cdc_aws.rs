//! The warehouse export in aws mode: DynamoDB Streams and Scan (moto,
//! MOVIEREC_TEST_AWS_ENDPOINT) → gzip CSV files in the S3 lake →
//! PostgreSQL (MOVIEREC_TEST_POSTGRES_URL); dead letters also to Kafka
//! (MOVIEREC_TEST_KAFKA). `bash scripts/test.sh` starts all three.

mod common;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::streams::{bootstrap, create_topic, unique};
use common::warehouse::{Rows, count, fresh_database, runtime, warehouse_rows};
use common::{movierec, run_ok, summary_of, workdir};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

fn aws_endpoint() -> String {
    std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto), or \
             moto_server -H 127.0.0.1 -p 5000 and MOVIEREC_TEST_AWS_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

struct Setup {
    config: PathBuf,
    bucket: String,
    url: String,
}

fn setup(work: &Path, tag: &str, extra: &str) -> Setup {
    let bucket = unique(&format!("cdc-{tag}"));
    let url = fresh_database(tag);
    let config = work.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage_mode: aws\naws:\n  region: us-east-1\n  endpoint_url: \"{endpoint}\"\n  \
             s3: {{ bucket: \"{bucket}\" }}\n  dynamodb: {{ user_features_table: \"{bucket}-u\", \
             movie_features_table: \"{bucket}-m\", ratings_table: \"{bucket}-r\" }}\n\
             export:\n  warehouse_url: \"{url}\"\n{extra}",
            endpoint = aws_endpoint()
        ),
    )
    .unwrap();
    run_ok(
        with_credentials(movierec(work))
            .arg("--config")
            .arg(&config)
            .arg("setup-aws"),
    );
    Setup {
        config,
        bucket,
        url,
    }
}

fn with_credentials(mut command: Command) -> Command {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn cdc(work: &Path, s: &Setup, args: &[&str]) -> Command {
    let mut command = with_credentials(movierec(work));
    command.arg("--config").arg(&s.config).arg("cdc").args(args);
    command
}

fn dynamodb() -> aws_sdk_dynamodb::Client {
    let shared = runtime().block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(aws_endpoint())
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load(),
    );
    aws_sdk_dynamodb::Client::new(&shared)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A feature item as the consumer writes it, from a seed.
fn feature_item(key_name: &str, key: i64, version: i64) -> (Item, (i64, f64, f64, i64)) {
    let count = 1 + (key * 7 + version) % 40;
    let avg = 0.5 + ((key * 13 + version) % 10) as f64 / 2.0 + 0.125;
    let std = ((key * 3) % 17) as f64 / 8.0;
    let ms = 1_700_000_000_000 + key * 1000 + version;
    let iso = chrono_iso(ms);
    let item = Item::from([
        (key_name.to_string(), n(key)),
        ("rating_count".into(), n(count)),
        ("avg_rating".into(), n(avg)),
        ("std_dev".into(), n(std)),
        ("last_update".into(), AttributeValue::S(iso)),
        ("last_update_ms".into(), n(ms)),
        ("version".into(), n(version)),
    ]);
    (item, (count, avg, std, ms))
}

fn chrono_iso(ms: i64) -> String {
    movierec_core::EventTime(ms).to_iso8601()
}

fn put_all(client: &aws_sdk_dynamodb::Client, table: &str, items: Vec<Item>) {
    runtime().block_on(async {
        let mut pending = futures_chunks(items);
        while let Some(chunk) = pending.pop() {
            let requests: Vec<WriteRequest> = chunk
                .into_iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            let mut request = HashMap::from([(table.to_string(), requests)]);
            loop {
                let out = client
                    .batch_write_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .unwrap();
                match out.unprocessed_items() {
                    Some(rest) if !rest.is_empty() => request = rest.clone(),
                    _ => break,
                }
            }
        }
    });
}

fn futures_chunks(items: Vec<Item>) -> Vec<Vec<Item>> {
    items.chunks(25).map(<[Item]>::to_vec).collect()
}

fn s3() -> aws_sdk_s3::Client {
    let shared = runtime().block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(aws_endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load(),
    );
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

/// The export's data files in the bucket.
fn data_file_count(s: &Setup) -> usize {
    let client = s3();
    runtime().block_on(async {
        let mut files = 0;
        let mut token = None;
        loop {
            let listed = client
                .list_objects_v2()
                .bucket(&s.bucket)
                .prefix("exports/")
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            files += listed
                .contents()
                .iter()
                .filter(|o| o.key().unwrap_or_default().ends_with(".csv.gz"))
                .count();
            token = listed.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return files;
            }
        }
    })
}

/// A JSON object of the bucket, if there.
fn s3_json(bucket: &str, key: &str) -> Value {
    let client = s3();
    runtime().block_on(async {
        match client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.unwrap().into_bytes();
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    })
}

/// The dead letters on a Kafka topic (partition 0, from the start).
fn kafka_letters(topic: &str, want: usize) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("cdc-dlq-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < want && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            letters.push(serde_json::from_slice(message.payload().unwrap()).unwrap());
        }
    }
    letters
}

#[test]
fn dynamodb_stream_changes_reach_postgres_and_poison_goes_to_the_dead_letters() {
    let work = workdir();
    let topic = unique("cdc-dlq");
    create_topic(&topic, 1);
    let s = setup(
        work.path(),
        "stream",
        &format!(
            "  max_file_bytes: 65536\n  max_record_bytes: 16384\n  dlq_topic: \"{topic}\"\n\
             kafka:\n  bootstrap_servers: \"{}\"\n",
            bootstrap()
        ),
    );
    let client = dynamodb();
    let (users_table, movies_table) = (format!("{}-u", s.bucket), format!("{}-m", s.bucket));

    // 3,000 users and 1,000 movies, then 500 users changed again (version 2).
    let mut want_users = Rows::new();
    let mut want_movies = Rows::new();
    let mut items = Vec::new();
    for key in 1..=3000 {
        let (item, row) = feature_item("user_id", key, 1);
        want_users.insert(key, row);
        items.push(item);
    }
    put_all(&client, &users_table, items);
    let mut items = Vec::new();
    for key in 1..=1000 {
        let (item, row) = feature_item("movie_id", key, 1);
        want_movies.insert(key, row);
        items.push(item);
    }
    put_all(&client, &movies_table, items);
    // Poison among them: a count that is not a number, and an item over
    // export.max_record_bytes.
    let (mut many, _) = feature_item("user_id", 900_001, 1);
    many.insert("rating_count".into(), AttributeValue::S("many".into()));
    let (mut huge, _) = feature_item("user_id", 900_002, 1);
    huge.insert("notes".into(), AttributeValue::S("x".repeat(40_000)));
    put_all(&client, &users_table, vec![many, huge]);
    let mut items = Vec::new();
    for key in (1..=3000).step_by(6) {
        let (item, row) = feature_item("user_id", key, 2);
        want_users.insert(key, row);
        items.push(item);
    }
    put_all(&client, &users_table, items);

    let output = run_ok(&mut cdc(work.path(), &s, &["run", "--until-idle", "2"]));
    let summary = summary_of(&output);
    println!("{summary}");
    assert_eq!(summary["changes"], 3000 + 1000 + 2 + 500, "{summary}");
    assert_eq!(summary["dead_letters"], 2, "{summary}");
    assert_eq!(
        warehouse_rows(&s.url, "user_features", "user_id"),
        want_users
    );
    assert_eq!(
        warehouse_rows(&s.url, "movie_features", "movie_id"),
        want_movies
    );
    // Files by size (64 KiB of CSV each), not one per change.
    let files = data_file_count(&s);
    assert!((2..=30).contains(&files), "{files} files");
    assert_eq!(
        count(&s.url, "SELECT COUNT(*) FROM movierec_export_loads") as usize,
        files
    );

    // The dead letters, with their reasons, on the topic too.
    let letters = kafka_letters(&topic, 2);
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{letters:?}");
    assert_eq!(reasons[0].0, "900001");
    assert!(
        reasons[0]
            .1
            .contains("invalid input syntax for type bigint: \"many\""),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "900002");
    assert!(
        reasons[1]
            .1
            .contains("over export.max_record_bytes (16384)"),
        "{reasons:?}"
    );

    // Resumed from the checkpoint: only what changed since.
    let (item, row) = feature_item("movie_id", 5000, 1);
    want_movies.insert(5000, row);
    put_all(&client, &movies_table, vec![item]);
    let again = summary_of(&run_ok(&mut cdc(
        work.path(),
        &s,
        &["run", "--until-idle", "1"],
    )));
    assert_eq!(again["changes"], 1, "{again}");
    assert_eq!(
        warehouse_rows(&s.url, "movie_features", "movie_id"),
        want_movies
    );

    let status = run_ok(&mut cdc(work.path(), &s, &["status", "--json"]));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["dead_letters"], 2, "{status}");
    assert_eq!(status["waiting_loads"], 0, "{status}");
    assert_eq!(status["shards"].as_array().unwrap().len(), 2, "{status}");
    let text = run_ok(&mut cdc(work.path(), &s, &["status"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("dead letters: 2"), "{text}");
    assert!(text.contains("last load: "), "{text}");
}

#[test]
fn a_dynamodb_backfill_killed_three_times_resumes_to_an_exact_copy() {
    let work = workdir();
    let s = setup(
        work.path(),
        "backfill",
        "  page_size: 1000\n  max_file_bytes: 1048576\n",
    );
    let client = dynamodb();
    let table = format!("{}-u", s.bucket);
    let mut want = Rows::new();
    let mut items = Vec::new();
    for key in 1..=50_000 {
        let (item, row) = feature_item("user_id", key, 3);
        want.insert(key, row);
        items.push(item);
    }
    put_all(&client, &table, items);

    let state_key = "exports/_state/backfill-user_features.json";
    let state = || s3_json(&s.bucket, state_key);
    let mut interrupted = 0;
    for kill in 0..3 {
        let pages_before = state()["pages"].as_u64().unwrap_or(0);
        let mut child = cdc(work.path(), &s, &["backfill", "--table", "user_features"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while state()["pages"].as_u64().unwrap_or(0) < pages_before + 2 + 4 * kill
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = state();
        println!("kill {kill}: after {} at page {}", at["after"], at["pages"]);
        if at["done"] == false {
            interrupted += 1;
        }
    }
    assert_eq!(interrupted, 3, "every kill landed mid-backfill");
    let output = run_ok(&mut cdc(
        work.path(),
        &s,
        &["backfill", "--table", "user_features"],
    ));
    assert_eq!(summary_of(&output)["done"], true);
    let got = warehouse_rows(&s.url, "user_features", "user_id");
    assert_eq!(got.len(), 50_000, "no row missing, none doubled");
    assert_eq!(got, want);
}
