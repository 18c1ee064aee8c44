//! The lakehouse batch on the embedded engine: bronze JSON lines in a lake →
//! silver Parquet (ratings, user and movie features) and gold Parquet (top
//! movies) → the serving database; on a local lake and on S3 (moto).

mod common;
use common::streams::{State, expected, unique};
use common::*;
use movierec_batch::parquet_tables::read_batches;
use movierec_config::AwsConfig;
use movierec_core::RatingEvent;
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use movierec_lake::Lake;
use std::collections::BTreeMap;
use std::path::Path;

fn events() -> Vec<RatingEvent> {
    // Few users and movies over several days: re-ratings, ties, many dates.
    let params = EventStreamParams {
        count: 6_000,
        users: 120,
        movies: 80,
        invalid_fraction: 0.0,
        seed: 5,
        ..Default::default()
    };
    synthetic_events(params)
        .enumerate()
        .map(|(i, e)| {
            let mut event = RatingEvent::from_json(&e.payload).unwrap();
            // Spread over five days, so that runs can take one day at a time.
            let day = (i % 5) as i64 * 86_400_000;
            event.timestamp = movierec_core::EventTime(event.timestamp.millis() + day);
            event
        })
        .collect()
}

/// Writes events as the consumer would: JSON lines per date, in stream order.
fn write_bronze(lake: &Lake, events: &[RatingEvent]) -> Vec<String> {
    let mut by_date: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for e in events {
        let lines = by_date.entry(e.timestamp.date()).or_default();
        lines.extend_from_slice(e.to_json().as_bytes());
        lines.push(b'\n');
    }
    runtime().block_on(async {
        for (date, lines) in &by_date {
            let key = format!("bronze/user-events/date={date}/p000-00000000000000000000.json");
            lake.put(&key, lines.clone().into()).await.unwrap();
        }
    });
    by_date.into_keys().collect()
}

fn runtime() -> tokio::runtime::Runtime {
    common::streams::runtime()
}

/// The record batches of a dataset's current version, and its run id.
fn dataset(lake: &Lake, prefix: &str) -> (Vec<arrow_array::RecordBatch>, String) {
    let (manifest, files) = runtime()
        .block_on(lake.read_dataset(prefix))
        .unwrap()
        .unwrap_or_else(|| panic!("{prefix} was never published"));
    let batches = files
        .into_iter()
        .flat_map(|f| read_batches(f).unwrap())
        .collect();
    (batches, manifest.run_id)
}

type Features = BTreeMap<u64, (u64, f64, f64, i64)>;

#[derive(Debug, PartialEq)]
struct Silver {
    ratings: BTreeMap<(u64, u64), (u8, i64)>,
    users: Features,
    movies: Features,
}

/// Silver ratings and features read back from the lake, and the run id.
fn silver(lake: &Lake) -> (Silver, String) {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    let (batches, run) = dataset(lake, "silver/ratings");
    let mut ratings = BTreeMap::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let u = b.column(0).as_primitive::<Int64Type>().value(i) as u64;
            let m = b.column(1).as_primitive::<Int64Type>().value(i) as u64;
            let r = b.column(2).as_primitive::<Float64Type>().value(i);
            let t = b
                .column(3)
                .as_primitive::<TimestampMillisecondType>()
                .value(i);
            ratings.insert((u, m), ((r * 2.0) as u8, t));
        }
    }
    let features = |prefix: &str| {
        let mut out = BTreeMap::new();
        for b in dataset(lake, prefix).0 {
            for i in 0..b.num_rows() {
                let id = b.column(0).as_primitive::<Int64Type>().value(i) as u64;
                let avg = b.column(1).as_primitive::<Float64Type>().value(i);
                let count = b.column(2).as_primitive::<Int64Type>().value(i) as u64;
                let std = b.column(3).as_primitive::<Float64Type>().value(i);
                let last = b
                    .column(4)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i);
                out.insert(id, (count, avg, std, last));
            }
        }
        out
    };
    let state = Silver {
        ratings,
        users: features("silver/user-features"),
        movies: features("silver/movie-features"),
    };
    (state, run)
}

/// Silver equals a recomputation: ratings and counts and newest times
/// exactly, means and sample deviations within 1e-9.
fn assert_recomputed(got: &Silver, want: &State) {
    assert_eq!(
        got.ratings, want.ratings,
        "silver ratings: the latest per pair"
    );
    for (name, got, want) in [
        ("user", &got.users, &want.users),
        ("movie", &got.movies, &want.movies),
    ] {
        assert_eq!(got.len(), want.len(), "{name} features");
        for (id, acc) in want {
            let f = acc.features();
            let (count, avg, std, last) = got[id];
            assert_eq!(
                (count, last),
                (f.rating_count, acc.last_update_ms),
                "{name} {id}"
            );
            assert!(
                (avg - f.avg_rating).abs() < 1e-9,
                "{name} {id}: {avg} vs {}",
                f.avg_rating
            );
            assert!(
                (std - f.std_dev).abs() < 1e-9,
                "{name} {id}: {std} vs {}",
                f.std_dev
            );
        }
    }
}

fn write_config(work: &Path, name: &str, lake_root: &str, extra: &str) -> std::path::PathBuf {
    let path = work.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "lake:\n  root: \"{lake_root}\"\nsqlite:\n  path: \"{}\"\nserving:\n  database_url: \"sqlite://{}\"\n\
             batch:\n  min_ratings: 20\n  top_n: 50\n  spark: {{ master: \"local[2]\", job: \"{}\" }}\n{extra}",
            work.join("store.db").display(),
            work.join("serving.db").display(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../jobs/spark/lakehouse.py")
                .display()
        ),
    )
    .unwrap();
    path
}

fn batch(work: &Path, config: &Path, args: &[&str]) -> String {
    let output = run_ok(aws_env(
        movierec(work)
            .arg("--config")
            .arg(config)
            .args(["batch", "run"])
            .args(args),
    ));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn reference(events: &[RatingEvent]) -> Vec<(u64, f64)> {
    let plain: Vec<(u64, u64, f64, i64)> = events
        .iter()
        .map(|e| {
            (
                e.user_id,
                e.movie_id,
                e.rating.value(),
                e.timestamp.millis(),
            )
        })
        .collect();
    reference_top(&plain, 20, 50)
}

#[test]
fn a_local_lake_batch_writes_silver_and_gold_and_is_idempotent_and_incremental() {
    let work = workdir();
    let root = work.path().join("lake");
    let lake = Lake::open(root.to_str().unwrap(), &AwsConfig::default()).unwrap();
    let events = events();
    let dates = write_bronze(&lake, &events);
    assert!(dates.len() >= 3, "{dates:?}");
    let config = write_config(work.path(), "full", root.to_str().unwrap(), "");

    let printed = batch(work.path(), &config, &["--all"]);
    assert!(printed.contains("batch succeeded"), "{printed}");
    let (first, first_run) = silver(&lake);
    assert_recomputed(&first, &expected(events.clone()));
    let serving = work.path().join("serving.db");
    assert_same_top(&published_top(&serving), &reference(&events));

    // The run is recorded stage by stage.
    let runs = run_ok(
        movierec(work.path())
            .arg("--config")
            .arg(&config)
            .args(["batch", "runs", "--json"]),
    );
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&runs.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1);
    let stages: Vec<(&str, u64)> = runs[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["rows"].as_u64().unwrap()))
        .collect();
    let names: Vec<&str> = stages.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        ["read", "latest", "features", "gold", "write", "publish"]
    );
    assert_eq!(stages[0].1, events.len() as u64, "events read");
    assert_eq!(stages[1].1, first.ratings.len() as u64, "latest ratings");
    assert_eq!(
        stages[2].1,
        (first.users.len() + first.movies.len()) as u64,
        "feature rows"
    );
    assert_eq!(runs[0]["engine"], "embedded");
    assert_eq!(runs[0]["status"], "succeeded");
    let table = run_ok(
        movierec(work.path())
            .arg("--config")
            .arg(&config)
            .args(["batch", "runs"]),
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("features") && table.contains("rows") && table.contains("bronze all dates"),
        "{table}"
    );

    // Again: the same datasets (a new version of each), no duplicated rows.
    batch(work.path(), &config, &["--all"]);
    let (second, second_run) = silver(&lake);
    assert_ne!(first_run, second_run);
    assert_eq!(second, first);
    assert_same_top(&published_top(&serving), &reference(&events));

    // Day by day on a fresh lake: each run adds a day to the previous silver
    // ratings; the last one equals the full run.
    let daily_root = work.path().join("daily");
    let daily = Lake::open(daily_root.to_str().unwrap(), &AwsConfig::default()).unwrap();
    write_bronze(&daily, &events);
    let daily_config = write_config(work.path(), "daily", daily_root.to_str().unwrap(), "");
    for date in &dates {
        batch(work.path(), &daily_config, &["--date", date]);
    }
    // The last day twice: still the same.
    batch(
        work.path(),
        &daily_config,
        &["--date", dates.last().unwrap()],
    );
    assert_eq!(silver(&daily).0, first);

    // A bad date is refused by name.
    let output = movierec(work.path())
        .arg("--config")
        .arg(&daily_config)
        .args(["batch", "run", "--date", "2025-13-01"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("--date \"2025-13-01\"") && error.contains("YYYY-MM-DD"),
        "{error}"
    );
}

/// An aws-mode config on moto with its bucket and tables made, and the lake
/// (`s3://BUCKET`) as the test reads it.
fn aws_lake(work: &Path, name: &str) -> (std::path::PathBuf, Lake) {
    let endpoint = std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto)")
    });
    let bucket = unique(name);
    let extra = format!(
        "storage_mode: aws\naws:\n  region: us-east-1\n  endpoint_url: \"{endpoint}\"\n  s3: {{ bucket: \"{bucket}\" }}\n  \
         dynamodb: {{ user_features_table: \"{bucket}-u\", movie_features_table: \"{bucket}-m\", ratings_table: \"{bucket}-r\" }}\n"
    );
    // The lake root follows the bucket in aws mode.
    let config = write_config(work, "aws", &format!("s3://{bucket}"), &extra);
    run_ok(aws_env(
        movierec(work).arg("--config").arg(&config).arg("setup-aws"),
    ));
    // SAFETY: set before any thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
    let aws = AwsConfig {
        endpoint_url: Some(endpoint),
        ..Default::default()
    };
    let lake = Lake::open(&format!("s3://{bucket}"), &aws).unwrap();
    (config, lake)
}

fn aws_env(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

#[test]
fn in_aws_mode_both_engines_read_and_write_the_s3_lake_alike() {
    let work = workdir();
    let events = events();
    let mut lakes = Vec::new();
    for engine in ["embedded", "spark"] {
        let dir = work.path().join(engine);
        std::fs::create_dir_all(&dir).unwrap();
        let (config, lake) = aws_lake(&dir, &format!("lake-{engine}"));
        write_bronze(&lake, &events);
        let printed = batch(&dir, &config, &["--engine", engine]);
        assert!(printed.contains("batch succeeded"), "{engine}: {printed}");
        let (state, _) = silver(&lake);
        assert_recomputed(&state, &expected(events.clone()));
        assert_same_top(&published_top(&dir.join("serving.db")), &reference(&events));
        if engine == "spark" {
            let runs = run_ok(
                movierec(&dir)
                    .arg("--config")
                    .arg(&config)
                    .args(["batch", "runs", "--json"]),
            );
            let run: serde_json::Value = serde_json::from_str(
                String::from_utf8_lossy(&runs.stdout)
                    .lines()
                    .next()
                    .unwrap(),
            )
            .unwrap();
            let names: Vec<&str> = run["stages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                names,
                ["plan", "spark-submit", "commit", "publish", "dynamodb"]
            );
            let plan = run["stages"][0]["detail"].as_str().unwrap();
            assert!(plan.contains("staged"), "{plan}");
            // local[2] and no spark.sql.shuffle.partitions in the config:
            // two per core, not Spark's 200.
            let submit = run["stages"][1]["detail"].as_str().unwrap();
            assert!(
                submit.contains("--master local[2]") && submit.contains(", 4 shuffle partitions"),
                "{submit}"
            );
        }
        lakes.push(lake);
    }
    // Local Spark has no S3A connector: it went through a staged local copy,
    // and the datasets it wrote are in the bucket.
    assert_same_outputs(&lakes[0], &lakes[1]);
    let keys: Vec<String> = runtime()
        .block_on(lakes[1].list("silver/user-features/"))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with(".parquet")) && keys.iter().all(|k| !k.contains("staging")),
        "{keys:?}"
    );
}

#[test]
fn a_compaction_killed_midway_on_s3_leaves_the_lake_readable_and_complete() {
    let work = workdir();
    let (config, lake) = aws_lake(work.path(), "compact");

    // 2,000 small bronze files, as a trickling consumer makes them.
    let events = events();
    let mut want: Vec<String> = Vec::new();
    runtime().block_on(async {
        for (i, chunk) in events.chunks(3).enumerate() {
            let date = chunk[0].timestamp.date();
            let body: String = chunk
                .iter()
                .filter(|e| e.timestamp.date() == date)
                .map(|e| e.to_json() + "\n")
                .collect();
            want.extend(body.lines().map(str::to_string));
            let key = format!("bronze/user-events/date={date}/p{:03}-{i:020}.json", i % 3);
            lake.put(&key, body.into()).await.unwrap();
        }
    });
    want.sort();
    let live = |lake: &Lake| -> (Vec<String>, usize) {
        runtime().block_on(async {
            let files = lake
                .read_live("bronze/user-events/", &|_| true)
                .await
                .unwrap();
            let mut lines = Vec::new();
            for (_, bytes) in &files {
                lines.extend(
                    String::from_utf8(bytes.to_vec())
                        .unwrap()
                        .lines()
                        .map(str::to_string),
                );
            }
            lines.sort();
            (lines, files.len())
        })
    };
    assert_eq!(live(&lake).1, 2000);
    let before = batch(work.path(), &config, &[]);
    assert!(before.contains("batch succeeded"), "{before}");
    let (silver_before, _) = silver(&lake);

    let compact = || {
        let mut command = movierec(work.path());
        command.arg("--config").arg(&config).args([
            "lake",
            "compact",
            "--min-age",
            "0s",
            "--target-size",
            "64KiB",
        ]);
        aws_env(&mut command);
        command
    };
    // Killed at a random moment while it works.
    let mut schedule = common::streams::KillSchedule::from_clock();
    let mut child = compact()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000) + schedule.next_wait(3000));
    let finished_before_kill = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    assert!(
        !finished_before_kill,
        "the compaction ended before the kill: make it bigger"
    );
    let (lines, files) = live(&lake);
    println!("after the kill: {files} live files");
    assert_eq!(lines, want, "readable and complete after the kill");

    // Run to the end: few files, every line once, the same batch result.
    let output = run_ok(&mut compact());
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(printed.contains("compacted"), "{printed}");
    let (lines, files) = live(&lake);
    assert_eq!(lines, want);
    assert!(files <= 20, "{files} files after compaction: {printed}");
    batch(work.path(), &config, &[]);
    assert_eq!(silver(&lake).0, silver_before);
}

/// gold/top-movies read back: (movie, score, rating_count) in rank order.
fn gold(lake: &Lake) -> Vec<(u64, f64, u64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type};
    let mut rows = Vec::new();
    for b in dataset(lake, "gold/top-movies").0 {
        let schema = b.schema();
        let col = |name: &str| b.column(schema.index_of(name).unwrap()).clone();
        for i in 0..b.num_rows() {
            rows.push((
                col("rank").as_primitive::<Int32Type>().value(i),
                col("movie_id").as_primitive::<Int64Type>().value(i) as u64,
                col("score").as_primitive::<Float64Type>().value(i),
                col("rating_count").as_primitive::<Int64Type>().value(i) as u64,
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|(_, m, s, c)| (m, s, c)).collect()
}

/// Silver and gold read back from a lake, to compare runs.
type Outputs = (Silver, Vec<(u64, f64, u64)>);

fn outputs(lake: &Lake) -> Outputs {
    (silver(lake).0, gold(lake))
}

/// Two engines' silver and gold agree: rows exactly, floats within 1e-9.
fn assert_same_outputs(embedded: &Lake, spark: &Lake) {
    assert_same(&outputs(embedded), &outputs(spark));
}

fn assert_same((a, x): &Outputs, (b, y): &Outputs) {
    assert_eq!(a.ratings, b.ratings, "silver ratings");
    for (name, p, q) in [
        ("user", &a.users, &b.users),
        ("movie", &a.movies, &b.movies),
    ] {
        assert_eq!(p.len(), q.len(), "{name} features: row count");
        for (id, &(count, avg, std, last)) in p {
            let (c2, a2, s2, l2) = q[id];
            assert_eq!((count, last), (c2, l2), "{name} {id}");
            assert!((avg - a2).abs() < 1e-9, "{name} {id} avg: {avg} vs {a2}");
            assert!((std - s2).abs() < 1e-9, "{name} {id} std: {std} vs {s2}");
        }
    }
    assert_eq!(x.len(), y.len(), "gold rows");
    for (rank, (p, q)) in x.iter().zip(y).enumerate() {
        assert_eq!((p.0, p.2), (q.0, q.2), "gold rank {}", rank + 1);
        assert!((p.1 - q.1).abs() < 1e-9, "gold rank {} score", rank + 1);
    }
}

#[test]
fn embedded_and_spark_engines_write_the_same_silver_and_gold() {
    let work = workdir();
    let events = events();
    let mut lakes = Vec::new();
    for engine in ["embedded", "spark"] {
        let root = work.path().join(format!("lake-{engine}"));
        let lake = Lake::open(root.to_str().unwrap(), &AwsConfig::default()).unwrap();
        write_bronze(&lake, &events);
        let config = write_config(work.path(), engine, root.to_str().unwrap(), "");
        let printed = batch(work.path(), &config, &["--engine", engine]);
        assert!(printed.contains("batch succeeded"), "{engine}: {printed}");
        lakes.push(lake);
    }
    assert_same_outputs(&lakes[0], &lakes[1]);
    // And the published top list is the reference's.
    assert_same_top(
        &published_top(&work.path().join("serving.db")),
        &reference(&events),
    );

    // ml-latest-small imported into the rating store (sqlite mode), no bronze.
    let movielens = movielens("ml-latest-small");
    let mut lakes = Vec::new();
    for engine in ["embedded", "spark"] {
        let dir = work.path().join(format!("ml-{engine}"));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("lake");
        let config = write_config(&dir, "ml", root.to_str().unwrap(), "");
        run_ok(
            movierec(&dir)
                .arg("--config")
                .arg(&config)
                .args(["import", "movielens"])
                .arg(&movielens),
        );
        let printed = batch(&dir, &config, &["--engine", engine]);
        assert!(printed.contains("batch succeeded"), "{engine}: {printed}");
        lakes.push(Lake::open(root.to_str().unwrap(), &AwsConfig::default()).unwrap());
    }
    assert_same_outputs(&lakes[0], &lakes[1]);
    assert!(gold(&lakes[0]).len() == 50, "top_n 50 on ml-latest-small");
}

/// Writes events as many small files (50 events each, per date), as a
/// trickling consumer makes them.
fn write_small_files(lake: &Lake, events: &[RatingEvent]) -> usize {
    let mut by_date: BTreeMap<String, Vec<&RatingEvent>> = BTreeMap::new();
    for e in events {
        by_date.entry(e.timestamp.date()).or_default().push(e);
    }
    let mut files = 0;
    runtime().block_on(async {
        for (date, events) in &by_date {
            for (i, chunk) in events.chunks(50).enumerate() {
                let body: String = chunk.iter().map(|e| e.to_json() + "\n").collect();
                let key = format!("bronze/user-events/date={date}/p000-{i:020}.json");
                lake.put(&key, body.into()).await.unwrap();
                files += 1;
            }
        }
    });
    files
}

fn live_keys(lake: &Lake) -> Vec<String> {
    runtime()
        .block_on(lake.live_files("bronze/user-events/"))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect()
}

#[test]
fn bronze_compacted_into_parquet_and_merged_again_gives_the_same_batch_on_both_engines() {
    let work = workdir();
    let events = events();
    let mut lakes = Vec::new();
    for engine in ["embedded", "spark"] {
        let root = work.path().join(format!("lake-{engine}"));
        let lake = Lake::open(root.to_str().unwrap(), &AwsConfig::default()).unwrap();
        let files = write_small_files(&lake, &events);
        let config = write_config(work.path(), engine, root.to_str().unwrap(), "");
        let compact = |args: &[&str]| {
            let output = run_ok(
                movierec(work.path())
                    .arg("--config")
                    .arg(&config)
                    .args(["lake", "compact", "--min-age", "0s"])
                    .args(args),
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        // JSON lines into Parquet, in groups of about 16 KiB of JSON.
        let printed = compact(&["--format", "parquet", "--target-size", "16KiB"]);
        let keys = live_keys(&lake);
        assert!(
            keys.iter().all(|k| k.ends_with(".parquet")) && keys.len() < files,
            "{printed}\n{keys:?}"
        );
        let dates = keys
            .iter()
            .map(|k| k.split('/').nth(2).unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert!(
            keys.len() > dates,
            "several Parquet files per date: {keys:?}"
        );
        // Parquet into Parquet: one file per date.
        let printed = compact(&["--target-size", "1MiB"]);
        let keys = live_keys(&lake);
        assert_eq!(keys.len(), dates, "{printed}\n{keys:?}");
        assert!(keys.iter().all(|k| k.ends_with(".parquet")), "{keys:?}");

        let printed = batch(work.path(), &config, &["--engine", engine]);
        assert!(printed.contains("batch succeeded"), "{engine}: {printed}");
        // Every event is there once: silver = a recomputation from the events.
        assert_recomputed(&silver(&lake).0, &expected(events.clone()));
        lakes.push(lake);
    }
    assert_same_outputs(&lakes[0], &lakes[1]);
}

#[test]
fn emr_submit_adds_a_cluster_mode_step_with_its_plan_in_s3_and_waits_for_it() {
    let work = workdir();
    let (config, lake) = aws_lake(work.path(), "emr");
    let dates = write_bronze(&lake, &events());
    let endpoint = std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap();
    let emr = runtime().block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_emr::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await;
        aws_sdk_emr::Client::new(&shared)
    });
    let cluster = runtime().block_on(async {
        emr.run_job_flow()
            .name("movierec-test")
            .release_label("emr-7.5.0")
            .instances(
                aws_sdk_emr::types::JobFlowInstancesConfig::builder()
                    .instance_count(1)
                    .master_instance_type("m5.xlarge")
                    .keep_job_flow_alive_when_no_steps(true)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .job_flow_id()
            .unwrap()
            .to_string()
    });

    // moto never runs a step: the wait ends at the timeout, by name.
    let output = aws_env(movierec(work.path()).arg("--config").arg(&config).args([
        "emr",
        "submit",
        "--cluster-id",
        &cluster,
        "--timeout",
        "3s",
    ]))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("on cluster {cluster} is still")) && stderr.contains("after 3s"),
        "{stderr}"
    );

    // The step: spark-submit in cluster mode, the job and its plan in S3.
    let steps = runtime().block_on(async {
        emr.list_steps()
            .cluster_id(&cluster)
            .send()
            .await
            .unwrap()
            .steps()
            .to_vec()
    });
    assert_eq!(steps.len(), 1);
    let args = steps[0].config().unwrap().args().to_vec();
    assert_eq!(args[..3], ["spark-submit", "--deploy-mode", "cluster"]);
    assert!(stderr.contains(steps[0].id().unwrap()), "{stderr}");
    let bucket = lake.url().trim_start_matches("s3://").to_string();
    let key = |url: &str| {
        url.strip_prefix(&format!("s3://{bucket}/"))
            .unwrap()
            .to_string()
    };
    let job = runtime()
        .block_on(lake.get(&key(&args[3])))
        .unwrap()
        .unwrap();
    let ours =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../jobs/spark/lakehouse.py"))
            .unwrap();
    assert_eq!(job.to_vec(), ours, "the job uploaded is the repository's");
    assert_eq!(args[4], "--plan");
    let plan: serde_json::Value = serde_json::from_slice(
        &runtime()
            .block_on(lake.get(&key(&args[5])))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let bronze = plan["bronze"].as_array().unwrap();
    assert_eq!(bronze.len(), dates.len(), "one object per date: {plan}");
    assert!(
        bronze.iter().all(|b| b
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{bucket}/bronze/"))),
        "EMRFS paths: {plan}"
    );
    assert!(
        plan["outputs"]["user_features"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{bucket}/silver/user-features/run=")),
        "{plan}"
    );
    // Nothing switched; the run is recorded as failed, naming the step.
    assert!(
        runtime()
            .block_on(lake.current_dataset("silver/user-features"))
            .unwrap()
            .is_none()
    );
    let runs = run_ok(
        movierec(work.path())
            .arg("--config")
            .arg(&config)
            .args(["batch", "runs", "--json"]),
    );
    let run: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&runs.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (run["engine"].as_str(), run["status"].as_str()),
        (Some("spark-emr"), Some("failed"))
    );
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains(steps[0].id().unwrap()),
        "{run}"
    );

    // A lake that is not on S3 is refused before anything is submitted.
    let local = write_config(
        work.path(),
        "local",
        work.path().join("lake").to_str().unwrap(),
        "",
    );
    let output = aws_env(movierec(work.path()).arg("--config").arg(&local).args([
        "emr",
        "submit",
        "--cluster-id",
        &cluster,
    ]))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("an EMR step reads the lake from S3"),
        "{stderr}"
    );
}

#[test]
fn in_aws_mode_import_puts_movielens_into_the_s3_lake_for_the_batch() {
    let work = workdir();
    let (config, lake) = aws_lake(work.path(), "import");
    // ml-100k, not ml-latest-small: a third of the items for the DynamoDB
    // refresh and 213 dates against 4,110 (one bronze object each), which
    // moto serves at ~70 updates/s; ml-latest-small goes through both
    // engines in sqlite mode above.
    let dir = movielens("ml-100k");
    let output = run_ok(aws_env(
        movierec(work.path())
            .arg("--config")
            .arg(&config)
            .args(["import", "movielens"])
            .arg(&dir),
    ));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        printed.contains("100000 ratings into the bronze layer"),
        "{printed}"
    );
    // Twice: the same objects, rewritten.
    run_ok(aws_env(
        movierec(work.path())
            .arg("--config")
            .arg(&config)
            .args(["import", "movielens"])
            .arg(&dir),
    ));
    let keys = live_keys(&lake);
    assert!(
        keys.iter().all(|k| k.ends_with("/import-ml-100k.parquet")),
        "{keys:?}"
    );
    let printed = batch(work.path(), &config, &[]);
    assert!(
        printed.contains("batch succeeded: 100000 ratings"),
        "{printed}"
    );
    let serving = work.path().join("serving.db");
    assert_same_top(
        &published_top(&serving),
        &reference_top(&read_ratings(&dir), 20, 50),
    );
    // The catalogue came with it: titles, not placeholders.
    let titles = sqlx_titles(&serving);
    assert!(
        titles
            .iter()
            .any(|t| t == "Shawshank Redemption, The (1994)"),
        "{titles:?}"
    );
    assert!(!titles.iter().any(|t| t.contains("not in the catalogue")));

    // ml-100k from the S3 lake on Spark too: the same silver and gold.
    let embedded = outputs(&lake);
    let printed = batch(work.path(), &config, &["--engine", "spark"]);
    assert!(
        printed.contains("batch succeeded: 100000 ratings"),
        "{printed}"
    );
    assert_same(&embedded, &outputs(&lake));
}

fn sqlx_titles(db: &Path) -> Vec<String> {
    use sqlx::Connection;
    runtime().block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT title FROM app_movie")
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

#[test]
fn in_aws_mode_up_sets_up_imports_a_sample_runs_the_batch_and_serves() {
    let work = workdir();
    let (config, lake) = aws_lake(work.path(), "up");
    let envs = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("MOVIEREC_DATA__SAMPLE_RATINGS", "2000".to_string()),
        ("MOVIEREC_DATA__SAMPLE_USERS", "100".to_string()),
        ("MOVIEREC_DATA__SAMPLE_MOVIES", "60".to_string()),
        ("MOVIEREC_MODELS__ENABLED", "true".to_string()),
    ];
    let config = config.display().to_string();
    let server = start(work.path(), &["--config", &config, "up"], &envs);
    let (status, health) = get(&server.base, "/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["storage_mode"], "aws");
    let (_, top) = get(&server.base, "/api/recommendations/top");
    assert!(top["total"].as_u64().unwrap() > 0, "{top}");
    let keys = live_keys(&lake);
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.ends_with("/import-sample.parquet")),
        "the sample went into the bronze layer: {keys:?}"
    );
    // The models trained on the S3 lake; the sample's users have no ratings
    // in DynamoDB (it went to the lake), so their lists are the batch's.
    for prefix in [
        "gold/user-recommendations",
        "gold/similar-movies",
        "models/ials",
    ] {
        let manifest = runtime().block_on(lake.current_dataset(prefix)).unwrap();
        assert!(manifest.is_some_and(|m| m.rows > 0), "{prefix} in S3");
    }
    let (status, recs) = get(&server.base, "/api/users/1/recommendations?k=5");
    assert_eq!(status, 200, "{recs}");
    assert_eq!(
        (recs["personalized"].as_bool(), recs["source"].as_str()),
        (Some(true), Some("batch")),
        "{recs}"
    );
    assert_eq!(recs["items"].as_array().unwrap().len(), 5, "{recs}");
}

/// `movierec bench batch`: a well-formed report for both engines on a small
/// synthetic set (the figures are benchmarks, not asserted).
#[test]
fn bench_batch_writes_the_seeds_table_for_both_engines() {
    let work = workdir();
    let dataset = work.path().join("ds");
    run_ok(
        movierec(work.path())
            .args([
                "data",
                "synth",
                "--ratings",
                "6000",
                "--users",
                "150",
                "--movies",
                "300",
                "--out",
            ])
            .arg(&dataset),
    );
    let config = work.path().join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "batch:\n  spark:\n    job: \"{}\"\n    conf:\n      spark.sql.shuffle.partitions: \"2\"\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../jobs/spark/lakehouse.py")
                .display()
        ),
    )
    .unwrap();
    let bench = |args: &[&str], out: &str| {
        let mut command = movierec(work.path());
        command
            .arg("--config")
            .arg(&config)
            .args(["bench", "batch", "--dataset"])
            .arg(&dataset)
            .args(args)
            .args(["--out", out]);
        run_ok(&mut command);
        let dir = work.path().join(out);
        (
            std::fs::read_to_string(dir.join("bench-batch.md")).unwrap(),
            std::fs::read_to_string(dir.join("bench-batch.svg")).unwrap(),
            serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(dir.join("bench-batch.json")).unwrap(),
            )
            .unwrap(),
        )
    };

    // The embedded engine on 1 and 2 cores, two shares, twice each.
    let (md, svg, json) = bench(
        &[
            "--engines",
            "embedded",
            "--cores",
            "1,2",
            "--repeats",
            "2",
            "--fractions",
            "0.5,1",
        ],
        "embedded",
    );
    assert!(md.contains("| Environment | Configuration | Processing time (median, min–max) | Speedup | Peak memory | CPU utilisation |"), "{md}");
    assert!(md.contains("| this machine | embedded, 1 core | "), "{md}");
    assert!(md.contains("| this machine | embedded, 2 cores | "), "{md}");
    assert!(md.contains("| 1.00x |"), "{md}");
    assert!(md.contains("| embedded, 2 cores | 0.5 | 3000 | "), "{md}");
    assert!(md.contains("| embedded, 1 core | 1 | 6000 | "), "{md}");
    assert!(md.contains("Seconds per million ratings"), "{md}");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
    let measurements = json["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 2 * 2 * 2);
    for m in measurements {
        assert!(m["wall_s"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["cpu_s"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["peak_rss_mib"].as_f64().unwrap() > 1.0, "{m}");
    }
    assert_eq!(json["growth"].as_array().unwrap().len(), 2);
    // Each run published the batch it timed: no run is an empty shell.
    assert!(json["summaries"][1]["median_s"].as_f64().unwrap() > 0.0);

    // Spark, local[2], once.
    let (md, svg, json) = bench(
        &[
            "--engines",
            "embedded,spark",
            "--cores",
            "2",
            "--spark-cores",
            "2",
            "--repeats",
            "1",
            "--fractions",
            "1",
        ],
        "spark",
    );
    assert!(
        md.contains("| this machine | Spark local[2] (2 cores) | "),
        "{md}"
    );
    assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
    let spark = json["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["engine"] == "spark")
        .unwrap();
    // The JVM is counted: far more than the embedded engine's memory.
    assert!(spark["peak_rss_mib"].as_f64().unwrap() > 150.0, "{spark}");

    // Bad requests are named.
    let bad = movierec(work.path())
        .args(["bench", "batch", "--dataset"])
        .arg(&dataset)
        .args(["--engines", "flink"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--engines: unknown engine `flink`"));
    let bad = movierec(work.path())
        .args(["bench", "batch", "--dataset"])
        .arg(&dataset)
        .args(["--engines", "embedded", "--cores", "64"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("embedded on 64 cores: this machine has")
    );
}

/// `movierec bench serve`: a well-formed report for two targets at an offered
/// rate and at `max` against a server it starts itself on a small synthetic
/// set (the latencies are benchmarks, not asserted; that nothing failed is).
#[test]
fn bench_serve_reports_latency_percentiles_per_target_and_rate() {
    let work = workdir();
    let dataset = work.path().join("ds");
    run_ok(
        movierec(work.path())
            .args([
                "data",
                "synth",
                "--ratings",
                "5000",
                "--users",
                "120",
                "--movies",
                "300",
                "--out",
            ])
            .arg(&dataset),
    );
    run_ok(
        movierec(work.path())
            .args(["import", "movielens"])
            .arg(&dataset),
    );
    run_ok(movierec(work.path()).args(["batch", "run"]));
    let output = run_ok(movierec(work.path()).args([
        "bench",
        "serve",
        "--targets",
        "top,user",
        "--rates",
        "200,max",
        "--duration",
        "1.5",
        "--warmup",
        "0.5",
        "--connections",
        "4",
        "--repeats",
        "1",
        "--out",
        "report",
    ]));
    let dir = work.path().join("report");
    let md = std::fs::read_to_string(dir.join("bench-serve.md")).unwrap();
    let svg = std::fs::read_to_string(dir.join("bench-serve.svg")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench-serve.json")).unwrap())
            .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("# Serving benchmark"));
    assert!(
        md.contains("| Target | Offered rate | Achieved req/s | p50 ms |"),
        "{md}"
    );
    for row in [
        "| top | 200/s |",
        "| top | max |",
        "| user | 200/s |",
        "| user | max |",
    ] {
        assert!(md.contains(row), "no row {row}:\n{md}");
    }
    assert!(
        md.contains("`GET /api/users/{user}/recommendations?k=10`"),
        "{md}"
    );
    assert!(
        svg.starts_with("<svg") && svg.matches("<rect").count() >= 4,
        "{svg}"
    );
    assert_eq!(json["users"], 120, "{{user}} drawn from the served users");
    let summaries = json["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 4, "{json:#}");
    for s in summaries {
        assert_eq!(s["errors"], 0, "{s:#}\n{md}");
        let (p50, p99, max) = (
            s["p50_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
            s["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{s:#}");
        assert!(s["achieved_per_s"].as_f64().unwrap() > 0.0, "{s:#}");
        assert!(
            s["server_peak_rss_mib"].as_f64().unwrap() > 0.0,
            "the server was watched: {s:#}"
        );
    }
    // 1.5 s at 200/s: about 300 requests counted.
    let rated = &json["runs"][0];
    assert_eq!(rated["rate"], "200/s");
    let requests = rated["requests"].as_u64().unwrap();
    assert!((240..=330).contains(&requests), "{rated:#}");
    assert!(
        !dir.join("bench-serve-work").exists(),
        "work files are removed"
    );

    // A server that is not there: a clear error, quickly.
    let output = movierec(work.path())
        .args(["bench", "serve", "--url"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .args([
            "--duration",
            "1",
            "--rates",
            "10",
            "--repeats",
            "1",
            "--targets",
            "top",
            "--out",
            "report2",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/health did not answer"), "{stderr}");
}
