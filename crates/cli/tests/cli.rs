//! Configuration and import behaviour seen from the command line.

mod common;
use common::*;

fn stderr_of(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "expected failure: {command:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn config_check_prints_the_effective_configuration() {
    let work = workdir();
    let output = run_ok(
        movierec(work.path())
            .args(["config", "check"])
            .env("MOVIEREC_AWS__S3__BUCKET", "my-bucket"),
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("built-in defaults"), "{text}");
    assert!(
        text.contains("aws.s3.bucket set by MOVIEREC_AWS__S3__BUCKET"),
        "{text}"
    );
    assert!(text.contains("bucket: my-bucket"), "{text}");
    assert!(text.contains("port: 8082"), "{text}");
}

#[test]
fn config_errors_name_file_key_and_form() {
    let work = workdir();
    std::fs::write(work.path().join("bad.yaml"), "serving:\n  port: eighty\n").unwrap();
    let error = stderr_of(movierec(work.path()).args(["--config", "bad.yaml", "config", "check"]));
    assert!(
        error.contains("bad.yaml: key `serving.port`") && error.contains("port number"),
        "{error}"
    );
    std::fs::write(work.path().join("typo.yaml"), "batch:\n  topn: 5\n").unwrap();
    let error = stderr_of(movierec(work.path()).args(["--config", "typo.yaml", "config", "check"]));
    assert!(
        error.contains("key `batch.topn`") && error.contains("top_n"),
        "{error}"
    );
    let error =
        stderr_of(movierec(work.path()).args(["--config", "missing.yaml", "config", "check"]));
    assert!(error.contains("missing.yaml"), "{error}");
    let error = stderr_of(
        movierec(work.path())
            .args(["config", "check"])
            .env("MOVIEREC_STORAGE_MODE", "cloud"),
    );
    assert!(
        error.contains("MOVIEREC_STORAGE_MODE") && error.contains("sqlite"),
        "{error}"
    );
}

#[test]
fn import_is_idempotent_and_reports_malformed_lines() {
    let work = workdir();
    let data = work.path().join("ml");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("movies.csv"),
        "movieId,title,genres\n1,\"Movie, With Comma (2001)\",Drama\n2,\"She Said \"\"Hi\"\" (1999)\",Comedy|Romance\n",
    )
    .unwrap();
    std::fs::write(
        data.join("ratings.csv"),
        "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,9.0,100\n2,1,3.5,100\n2,1,1.0,50\nbroken line\n",
    )
    .unwrap();
    let first = run_ok(movierec(work.path()).args(["import", "movielens", "ml"]));
    let text = String::from_utf8(first.stdout).unwrap();
    assert!(text.contains("holds 2 ratings"), "{text}");
    assert!(text.contains("skipped 2 malformed"), "{text}");
    assert!(text.contains("ratings.csv:3"), "{text}");
    assert!(text.contains("ratings.csv:6"), "{text}");
    let second = run_ok(movierec(work.path()).args(["import", "movielens", "ml"]));
    assert!(
        String::from_utf8(second.stdout)
            .unwrap()
            .contains("holds 2 ratings")
    );
    let error = stderr_of(movierec(work.path()).args(["import", "movielens", "ml", "--strict"]));
    assert!(error.contains("ratings.csv:3"), "{error}");
    run_ok(movierec(work.path()).args(["batch", "run"]));
    let runs = run_ok(movierec(work.path()).args(["batch", "runs"]));
    assert!(
        String::from_utf8(runs.stdout)
            .unwrap()
            .contains("succeeded")
    );
}

#[test]
fn an_aws_mode_import_names_a_missing_folder() {
    let work = workdir();
    let error = stderr_of(
        movierec(work.path())
            .args(["import", "movielens", "nowhere"])
            .env("MOVIEREC_STORAGE_MODE", "aws"),
    );
    assert!(error.contains("nowhere"), "{error}");
}

/// `movierec aws cost`: the seed's examples, from the shipped prices and
/// from a file of the user's.
#[test]
fn aws_cost_prices_both_layouts_from_a_prices_file() {
    let work = workdir();
    let output = run_ok(movierec(work.path()).args([
        "aws",
        "cost",
        "--ratings",
        "1000000",
        "--users",
        "100000",
        "--reads-per-month",
        "1000000",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cost = |layout: &str, what: &str| -> f64 {
        report[layout]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["what"].as_str().unwrap().starts_with(what))
            .unwrap_or_else(|| panic!("{layout} {what}: {report}"))["cost"]
            .as_f64()
            .unwrap()
    };
    // 1M ratings ≈ 100 MB: $0.002 a month in S3; one PUT per event: $5.
    assert_eq!(format!("{:.3}", cost("seed", "storage: bronze")), "0.002");
    assert!((cost("seed", "PUT") - 5.0).abs() < 1e-9);
    // 10 objects of 100,000 events (kafka.max_batch_events).
    assert!((cost("movierec", "PUT") - 0.00005).abs() < 1e-12);
    // 1M reads a month: $0.25.
    assert!((cost("seed", "reads") - 0.25).abs() < 1e-12);
    assert!(report["movierec"]["monthly"].as_f64() < report["seed"]["monthly"].as_f64());

    // Prices of the user's own, and a region they lack.
    let prices = work.path().join("prices.yaml");
    std::fs::write(
        &prices,
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/aws-prices.yaml"),
        )
        .unwrap()
        .replace("us-east-1:", "eu-west-1:")
        .replace("s3_put_per_1000: 0.005 ", "s3_put_per_1000: 0.0054"),
    )
    .unwrap();
    let text = run_ok(movierec(work.path()).args([
        "aws",
        "cost",
        "--ratings",
        "1000000",
        "--users",
        "100000",
        "--reads-per-month",
        "1000000",
        "--region",
        "eu-west-1",
        "--prices",
        prices.to_str().unwrap(),
    ]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("| S3 | PUT bronze objects (one per event) | 1000000 | 1,000 requests | $0.0054 | $5.4000 | once |"), "{text}");
    let missing = movierec(work.path())
        .args([
            "aws",
            "cost",
            "--ratings",
            "1",
            "--users",
            "1",
            "--reads-per-month",
            "1",
            "--region",
            "us-east-1",
            "--prices",
        ])
        .arg(&prices)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("has no prices for region `us-east-1` (it has: eu-west-1)"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
