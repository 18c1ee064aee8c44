//! `storage_mode: aws` ingestion: Kafka (tansu, MOVIEREC_TEST_KAFKA) → the
//! consumer → the S3 bronze layer (moto, MOVIEREC_TEST_AWS_ENDPOINT), both
//! started by `scripts/test.sh`. Every valid event must be in exactly one
//! bronze object, through crashes.

mod common;
use common::streams::*;
use common::*;
use movierec_core::RatingEvent;
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn aws_endpoint() -> String {
    std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto), or \
             moto_server -H 127.0.0.1 -p 5000 and MOVIEREC_TEST_AWS_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

/// Adds aws mode to a stream's config and creates the bucket and tables.
fn to_aws(work: &Path, s: &Stream, endpoint: &str) -> String {
    let bucket = unique("bronze");
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push_str(&format!(
        "storage_mode: aws\naws:\n  region: us-east-1\n  endpoint_url: \"{}\"\n  s3: {{ bucket: \"{bucket}\" }}\n  \
         dynamodb: {{ user_features_table: \"{bucket}-u\", movie_features_table: \"{bucket}-m\" }}\n",
        endpoint
    ));
    std::fs::write(&s.config, text).unwrap();
    run_ok(with_credentials(movierec_with(work, &s.config)).arg("setup-aws"));
    bucket
}

fn with_credentials(mut command: std::process::Command) -> std::process::Command {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// Every line of every bronze object, and the number of objects.
fn bronze_lines(endpoint: &str, bucket: &str) -> (Vec<String>, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(true)
                .build(),
        );
        let mut lines = Vec::new();
        let mut objects = 0;
        let mut token = None;
        loop {
            let listed = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix("bronze/user-events/date=")
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for object in listed.contents() {
                let key = object.key().unwrap();
                assert!(key.ends_with(".json"), "{key}");
                let body = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let bytes = body.body.collect().await.unwrap().into_bytes();
                let text = String::from_utf8(bytes.to_vec()).unwrap();
                let date = key
                    .split("date=")
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap();
                for line in text.lines() {
                    let event = RatingEvent::from_json(line.as_bytes()).unwrap();
                    assert_eq!(event.timestamp.date(), date, "{key}: {line}");
                    lines.push(line.to_string());
                }
                objects += 1;
            }
            token = listed.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        (lines, objects)
    })
}

/// `movierec produce` in the background at a steady rate.
fn produce_at(
    work: &Path,
    s: &Stream,
    params: &EventStreamParams,
    rate: u32,
) -> std::process::Child {
    produce_command(work, &s.config, params)
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn expected_lines(params: EventStreamParams) -> Vec<String> {
    let mut lines: Vec<String> = synthetic_events(params)
        .filter_map(|e| RatingEvent::from_json(&e.payload).ok())
        .map(|e| e.to_json())
        .collect();
    lines.sort();
    lines
}

#[test]
fn every_valid_event_lands_in_exactly_one_bronze_object_through_sigkills() {
    let work = workdir();
    let s = stream(work.path(), "bronze", 3, "bronze", 1000);
    let endpoint = aws_endpoint();
    let bucket = to_aws(work.path(), &s, &endpoint);
    let params = EventStreamParams {
        count: 50_000,
        users: 2000,
        movies: 1500,
        invalid_fraction: 0.01,
        seed: 21,
        ..Default::default()
    };
    // Produced at a steady 1,000 events/s while the consumer is killed, so
    // the kills land mid-stream.
    let mut producer = produce_at(work.path(), &s, &params, 1000);
    let want = expected_lines(params);

    // Five SIGKILLs, each once the bronze layer has grown, after a random wait.
    let mut schedule = KillSchedule::from_clock();
    let mut interrupted = 0;
    for kill in 0..5 {
        let before = bronze_lines(&endpoint, &bucket).1;
        let mut child = with_credentials(movierec_with(work.path(), &s.config))
            .arg("consume")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while bronze_lines(&endpoint, &bucket).1 == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(schedule.next_wait(1500));
        child.kill().unwrap();
        child.wait().unwrap();
        let (lines, objects) = bronze_lines(&endpoint, &bucket);
        println!("kill {kill}: {} lines in {objects} objects", lines.len());
        if lines.len() < want.len() {
            interrupted += 1;
        }
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} kills landed mid-stream"
    );
    assert!(producer.wait().unwrap().success());

    let summary = {
        let output = run_ok(
            with_credentials(movierec_with(work.path(), &s.config)).args([
                "consume",
                "--until-idle",
                "3",
            ]),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (mut got, objects) = bronze_lines(&endpoint, &bucket);
    got.sort();
    assert_eq!(got.len(), want.len(), "{summary}");
    assert_eq!(got, want, "every valid event exactly once");
    // Batched: far fewer objects than events (the seed wrote one per event).
    assert!(
        objects * 20 < want.len(),
        "{objects} objects for {} events",
        want.len()
    );
}

fn signal(pid: u32, name: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn an_s3_outage_of_20_seconds_is_ridden_out() {
    // Its own moto: pausing it must touch no other test.
    let moto = spawn_moto(&[]);

    let work = workdir();
    let s = stream(work.path(), "outage", 2, "outage", 1000);
    let bucket = to_aws(work.path(), &s, &moto.endpoint);
    let params = EventStreamParams {
        count: 20_000,
        users: 500,
        movies: 500,
        invalid_fraction: 0.0,
        seed: 3,
        ..Default::default()
    };
    let mut producer = produce_at(work.path(), &s, &params, 1000);
    let consumer = with_credentials(movierec_with(work.path(), &s.config))
        .args(["consume", "--until-idle", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while bronze_lines(&moto.endpoint, &bucket).1 == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing reached the bronze layer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The endpoint stops answering for 20 s mid-stream.
    signal(moto.child.id(), "STOP");
    std::thread::sleep(Duration::from_secs(20));
    signal(moto.child.id(), "CONT");

    let output = consumer.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the consumer gave up: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(producer.wait().unwrap().success());
    let (mut got, _) = bronze_lines(&moto.endpoint, &bucket);
    got.sort();
    assert_eq!(got, expected_lines(params), "nothing lost, nothing twice");
}

#[test]
fn in_aws_mode_posted_ratings_reach_the_bronze_layer_through_kafka() {
    let work = workdir();
    let s = stream(work.path(), "aws-api", 1, "aws-api", 100);
    let endpoint = aws_endpoint();
    let bucket = to_aws(work.path(), &s, &endpoint);
    let config = s.config.display().to_string();
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    let server = start(work.path(), &["--config", &config, "serve"], &credentials);
    let (status, body) = post(
        &server.base,
        "/api/ratings",
        r#"{"user_id": 7, "movie_id": 8, "rating": 4.5, "timestamp": "2025-03-15T10:30:00"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (lines, _) = bronze_lines(&endpoint, &bucket);
        if !lines.is_empty() {
            assert_eq!(
                lines,
                [r#"{"movie_id":8,"rating":4.5,"timestamp":"2025-03-15T10:30:00Z","user_id":7}"#]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rating never reached the bronze layer"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, health) = get(&server.base, "/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["storage_mode"], "aws");
    assert_eq!(health["kafka"]["status"], "connected");
}
