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
