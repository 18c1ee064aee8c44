//! `setup-aws` / `teardown-aws` against a real S3 + DynamoDB endpoint: moto
//! (started by `scripts/test.sh`; its URL in MOVIEREC_TEST_AWS_ENDPOINT), and
//! the seed's trouble cases: no credentials, an unreachable endpoint, a table
//! that exists with another key schema.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn endpoint() -> String {
    std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOVIEREC_TEST_AWS_ENDPOINT is not set: run the suite with `bash scripts/test.sh` (it starts moto), \
             or start moto yourself (pip install 'moto[server]==5.2.5'; moto_server -H 127.0.0.1 -p 5000) \
             and set MOVIEREC_TEST_AWS_ENDPOINT=http://127.0.0.1:5000"
        )
    })
}

/// Names unique to this test run: the moto server is shared.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

struct Names {
    bucket: String,
    users: String,
    movies: String,
    ratings: String,
    config: PathBuf,
}

fn aws_config(work: &Path, region: &str, endpoint: &str) -> Names {
    let names = Names {
        bucket: unique("lake"),
        users: unique("users"),
        movies: unique("movies"),
        ratings: unique("ratings"),
        config: work.join("aws.yaml"),
    };
    std::fs::write(
        &names.config,
        format!(
            "storage_mode: aws\naws:\n  region: {region}\n  endpoint_url: \"{endpoint}\"\n  \
             s3: {{ bucket: \"{}\" }}\n  dynamodb: {{ user_features_table: \"{}\", movie_features_table: \"{}\", \
             ratings_table: \"{}\" }}\n",
            names.bucket, names.users, names.movies, names.ratings
        ),
    )
    .unwrap();
    names
}

fn movierec_aws(work: &Path, names: &Names) -> std::process::Command {
    let mut command = movierec(work);
    command
        .arg("--config")
        .arg(&names.config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        // Never read the developer's own ~/.aws.
        .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failure(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap();
    assert!(
        !output.status.success(),
        "expected a failure, got\n{}",
        stdout(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn setup_is_idempotent_and_teardown_removes_everything() {
    let work = workdir();
    // Outside us-east-1: the bucket needs a LocationConstraint.
    let names = aws_config(work.path(), "eu-west-1", &endpoint());

    let plan = stdout(&run_ok(
        movierec_aws(work.path(), &names).args(["setup-aws", "--dry-run"]),
    ));
    assert!(plan.contains("dry run"), "{plan}");
    assert_eq!(plan.matches("would be created").count(), 7, "{plan}");

    let first = stdout(&run_ok(movierec_aws(work.path(), &names).arg("setup-aws")));
    assert_eq!(first.matches("created").count(), 7, "{first}");
    for resource in [
        format!("s3://{}", names.bucket),
        format!("s3://{}/bronze/user-events/", names.bucket),
        format!("s3://{}/silver/", names.bucket),
        format!("s3://{}/gold/", names.bucket),
        format!("dynamodb table {}", names.users),
        format!("dynamodb table {}", names.movies),
        format!("dynamodb table {}", names.ratings),
    ] {
        assert!(
            first.contains(&resource),
            "{resource} missing from\n{first}"
        );
    }
    let second = stdout(&run_ok(movierec_aws(work.path(), &names).arg("setup-aws")));
    assert_eq!(second.matches("exists (unchanged)").count(), 7, "{second}");

    // The tables as the warehouse export needs them, read back independently.
    let tables = runtime().block_on(async {
        let client = dynamodb(&endpoint(), "eu-west-1").await;
        let mut found = Vec::new();
        for table in [&names.users, &names.movies] {
            let described = client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .unwrap();
            let t = described.table().unwrap();
            found.push((
                t.key_schema()[0].attribute_name().to_string(),
                t.attribute_definitions()[0]
                    .attribute_type()
                    .as_str()
                    .to_string(),
                t.billing_mode_summary()
                    .and_then(|b| b.billing_mode())
                    .map(|b| b.as_str().to_string()),
                t.stream_specification()
                    .and_then(|s| s.stream_view_type())
                    .map(|v| v.as_str().to_string()),
            ));
        }
        found
    });
    assert_eq!(tables[0].0, "user_id");
    assert_eq!(tables[1].0, "movie_id");
    // The ratings table: user then movie, number keys; no stream needed.
    let ratings_keys = runtime().block_on(async {
        let client = dynamodb(&endpoint(), "eu-west-1").await;
        let described = client
            .describe_table()
            .table_name(&names.ratings)
            .send()
            .await
            .unwrap();
        let t = described.table().unwrap().clone();
        t.key_schema()
            .iter()
            .map(|k| format!("{} {}", k.attribute_name(), k.key_type().as_str()))
            .collect::<Vec<_>>()
    });
    assert_eq!(ratings_keys, ["user_id HASH", "movie_id RANGE"]);
    for (_, kind, billing, stream) in &tables {
        assert_eq!(kind, "N");
        assert_eq!(billing.as_deref(), Some("PAY_PER_REQUEST"));
        assert_eq!(stream.as_deref(), Some("NEW_AND_OLD_IMAGES"));
    }

    let refused = failure(movierec_aws(work.path(), &names).arg("teardown-aws"));
    assert!(refused.contains("--yes"), "{refused}");
    let removed = stdout(&run_ok(
        movierec_aws(work.path(), &names).args(["teardown-aws", "--yes"]),
    ));
    assert_eq!(removed.matches("deleted").count(), 4, "{removed}");
    let again = stdout(&run_ok(
        movierec_aws(work.path(), &names).args(["setup-aws", "--dry-run"]),
    ));
    assert_eq!(again.matches("would be created").count(), 7, "{again}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn dynamodb(endpoint: &str, region: &str) -> aws_sdk_dynamodb::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&shared)
}

#[test]
fn a_table_with_another_key_schema_is_reported_and_left_alone() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let work = workdir();
    let names = aws_config(work.path(), "us-east-1", &endpoint());
    // The seed's table name, made by hand with a string key `id`.
    runtime().block_on(async {
        dynamodb(&endpoint(), "us-east-1")
            .await
            .create_table()
            .table_name(&names.users)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    });
    let message = failure(movierec_aws(work.path(), &names).arg("setup-aws"));
    assert!(
        message.contains(&format!(
            "DynamoDB table {} exists with key schema [id (S, HASH)], but movierec needs [user_id (N, HASH)]",
            names.users
        )),
        "{message}"
    );
    assert!(
        message.contains("aws.dynamodb.user_features_table"),
        "{message}"
    );
    assert!(message.contains("left as it is"), "{message}");
    // Left alone: still its own schema.
    let key = runtime().block_on(async {
        let client = dynamodb(&endpoint(), "us-east-1").await;
        let out = client
            .describe_table()
            .table_name(&names.users)
            .send()
            .await
            .unwrap();
        out.table().unwrap().key_schema()[0]
            .attribute_name()
            .to_string()
    });
    assert_eq!(key, "id");
}

#[test]
fn missing_credentials_and_unreachable_endpoints_are_named() {
    let work = workdir();
    let names = aws_config(work.path(), "us-east-1", &endpoint());
    let message = failure(
        movierec_aws(work.path(), &names)
            .arg("setup-aws")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", work.path()),
    );
    assert!(message.contains("no AWS credentials found"), "{message}");
    assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");

    let port = free_port(); // nothing listens there
    let down = aws_config(
        work.path(),
        "us-east-1",
        &format!("http://127.0.0.1:{port}"),
    );
    let message = failure(movierec_aws(work.path(), &down).arg("setup-aws"));
    assert!(
        message.contains(&format!("cannot reach http://127.0.0.1:{port}")),
        "{message}"
    );
    assert!(message.contains("aws.endpoint_url"), "{message}");
}

/// A moto of this test's own that enforces IAM: the first `free` requests
/// are let through unauthenticated (to make a user), the rest need that
/// user's keys and policy.
fn strict_moto(free: u32) -> Moto {
    spawn_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())])
}

/// Creates an IAM user (with an inline policy, if any) and returns its keys.
fn iam_user(endpoint: &str, policy: Option<&str>) -> (String, String) {
    let script = format!(
        r#"
import boto3, json
iam = boto3.client("iam", endpoint_url="{endpoint}", region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
iam.create_user(UserName="limited")
policy = {policy:?}
if policy:
    iam.put_user_policy(UserName="limited", PolicyName="p", PolicyDocument=policy)
key = iam.create_access_key(UserName="limited")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
        policy = policy.unwrap_or("")
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "boto3 (installed with moto[server]) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.split_whitespace();
    (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    )
}

/// `setup-aws` as an IAM user of a strict moto with `policy`: its error.
fn setup_denied(free_requests: u32, policy: Option<&str>) -> (String, Names, tempfile::TempDir) {
    let moto = strict_moto(free_requests);
    let (key, secret) = iam_user(&moto.endpoint, policy);
    let work = workdir();
    let names = aws_config(work.path(), "us-east-1", &moto.endpoint);
    let message = failure(
        movierec_aws(work.path(), &names)
            .arg("setup-aws")
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret),
    );
    (message, names, work)
}

#[test]
fn access_denied_names_the_resource_and_the_action() {
    // No policy at all: the first call, on the bucket, is refused.
    let (message, names, _work) = setup_denied(2, None);
    assert!(
        message.contains(&format!(
            "access denied: s3:ListBucket (HeadBucket) on s3://{} (HTTP 403 Forbidden)",
            names.bucket
        )),
        "{message}"
    );

    // S3 allowed, DynamoDB not: the bucket is made, the table call refused.
    let (message, names, _work) = setup_denied(
        3,
        Some(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#,
        ),
    );
    assert!(
        message.contains(&format!(
            "access denied: dynamodb:DescribeTable on {}",
            names.users
        )),
        "{message}"
    );
}

#[test]
fn health_in_aws_mode_checks_the_bucket_and_each_table() {
    let work = workdir();
    let names = aws_config(work.path(), "us-east-1", &endpoint());
    run_ok(movierec_aws(work.path(), &names).arg("setup-aws"));
    let config = names.config.display().to_string();
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    let server = start(work.path(), &["--config", &config, "serve"], &credentials);
    let (status, health) = get(&server.base, "/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["storage_mode"], "aws");
    let info = &health["storage_info"];
    assert_eq!(info["mode"], "aws");
    assert_eq!(info["s3_bucket"], names.bucket.as_str());
    assert_eq!(info["s3_status"], "ok");
    assert_eq!(info["dynamodb_tables"][&names.users], "active");
    assert_eq!(info["dynamodb_tables"][&names.movies], "active");
    assert_eq!(info["dynamodb_tables"][&names.ratings], "active");

    // aws mode takes ratings through Kafka; without it, a clear 503 saying so.
    let (status, body) = post(
        &server.base,
        "/api/ratings",
        r#"{"user_id": 1, "movie_id": 2, "rating": 4, "timestamp": 1}"#,
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("kafka.enabled"), "{body}");

    // The resources go away: 503 naming each.
    run_ok(movierec_aws(work.path(), &names).args(["teardown-aws", "--yes"]));
    let (status, health) = get(&server.base, "/health");
    assert_eq!(status, 503, "{health}");
    let failures = health["failures"].to_string();
    for name in [&names.bucket, &names.users, &names.movies, &names.ratings] {
        assert!(failures.contains(name.as_str()), "{name} not in {failures}");
    }
}
