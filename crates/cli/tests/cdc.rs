//! The warehouse export in SQL mode (`movierec cdc`): the SQLite store's
//! change log → gzip CSV files in a local lake → PostgreSQL.
//!
//! Needs PostgreSQL: `bash scripts/test.sh` starts one and sets
//! MOVIEREC_TEST_POSTGRES_URL; the restart test starts its own cluster
//! (PostgreSQL 15's binaries, MOVIEREC_TEST_PG_BIN).

mod common;

use common::warehouse::{Rows, count, fresh_database, runtime, warehouse_rows};
use common::{movierec, run_ok, summary_of, workdir};
use movierec_core::FeatureAccumulator;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(work: &Path, warehouse: &str, max_file_bytes: u64, page_size: usize) -> PathBuf {
    let config = work.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sqlite:\n  path: {db}\nlake:\n  root: {lake}\nexport:\n  warehouse_url: \"{warehouse}\"\n  \
             max_file_bytes: {max_file_bytes}\n  max_file_age_s: 300\n  page_size: {page_size}\n",
            db = work.join("store.db").display(),
            lake = work.join("lake").display(),
        ),
    )
    .unwrap();
    config
}

fn cdc(work: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = movierec(work);
    command.arg("--config").arg(config).arg("cdc").args(args);
    command
}

fn import_synthetic(work: &Path, config: &Path, ratings: u64, users: u64, movies: u64, seed: u64) {
    let dir = work.join(format!("synth-{seed}"));
    run_ok(movierec(work).args([
        "data",
        "synth",
        "--ratings",
        &ratings.to_string(),
        "--users",
        &users.to_string(),
        "--movies",
        &movies.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        dir.to_str().unwrap(),
    ]));
    run_ok(
        movierec(work)
            .arg("--config")
            .arg(config)
            .args(["import", "movielens"])
            .arg(&dir),
    );
}

/// The source: the store's feature rows as the warehouse should hold them.
fn source_rows(db: &Path, table: &str, key: &str) -> Rows {
    runtime().block_on(async {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, rating_count, sum_half, sum_sq_quarter, last_update_ms FROM {table}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        rows.iter()
            .map(|row| {
                let acc = FeatureAccumulator {
                    count: row.get::<i64, _>(1) as u64,
                    sum_half: row.get::<i64, _>(2) as u64,
                    sum_sq_quarter: row.get::<i64, _>(3) as u64,
                    last_update_ms: row.get(4),
                };
                let f = acc.features();
                (
                    row.get(0),
                    (
                        f.rating_count as i64,
                        f.avg_rating,
                        f.std_dev,
                        acc.last_update_ms,
                    ),
                )
            })
            .collect()
    })
}

fn assert_warehouse_equals_source(work: &Path, url: &str) {
    for (table, key) in [("user_features", "user_id"), ("movie_features", "movie_id")] {
        let want = source_rows(&work.join("store.db"), table, key);
        let got = warehouse_rows(url, table, key);
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert_eq!(got, want, "{table}: row by row");
    }
}

/// Data files of the export (not manifests, state or dead letters).
fn data_files(lake: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![lake.join("exports")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.file_name().unwrap().to_string_lossy().starts_with('_') {
                    stack.push(path);
                }
            } else if path.to_string_lossy().ends_with(".csv.gz") {
                let mut csv = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
                    &mut csv,
                )
                .unwrap();
                files.push((path, csv.len() as u64));
            }
        }
    }
    files
}

fn change_log_rows(db: &Path) -> i64 {
    runtime().block_on(async {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM feature_changes")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
}

#[test]
fn twenty_thousand_changes_reach_the_warehouse_in_few_files() {
    let work = workdir();
    let url = fresh_database("run");
    const MAX_FILE: u64 = 256 * 1024;
    let config = write_config(work.path(), &url, MAX_FILE, 1000);
    // The first run turns the change log on (and creates the warehouse tables).
    let first = summary_of(&run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "0.5"],
    )));
    assert_eq!(first["changes"], 0, "{first}");

    import_synthetic(work.path(), &config, 150_000, 12_000, 9_000, 5);
    let output = run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "1"],
    ));
    let summary = summary_of(&output);
    let changes = summary["changes"].as_u64().unwrap();
    assert!(changes >= 20_000, "{summary}");
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    assert_warehouse_equals_source(work.path(), &url);
    assert_eq!(
        change_log_rows(&work.path().join("store.db")),
        0,
        "exported changes are dropped"
    );

    // Files: bounded by the size rule (each full file reaches MAX_FILE; at
    // most one smaller file per table per flush), not one per change.
    let files = data_files(&work.path().join("lake"));
    let raw: u64 = files.iter().map(|(_, size)| size).sum();
    let flushes = changes.div_ceil(10_000);
    assert!(
        files.len() as u64 <= raw / MAX_FILE + 2 * flushes,
        "{} files for {raw} bytes",
        files.len()
    );
    assert!(
        files.len() * 500 < changes as usize,
        "{} files",
        files.len()
    );
    for (path, size) in &files {
        assert!(*size <= MAX_FILE, "{} has {size} bytes", path.display());
        let relative = path.strip_prefix(work.path().join("lake")).unwrap();
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(parts[0], "exports");
        assert!(parts[1] == "user_features" || parts[1] == "movie_features");
        assert!(
            parts[2].starts_with("date=") && parts[3].starts_with("hour="),
            "{parts:?}"
        );
    }
    let loads = count(&url, "SELECT COUNT(*) FROM movierec_export_loads");
    assert_eq!(loads as usize, files.len(), "one load per file");

    // A re-import rewrites every feature row (delete, then insert, in the
    // same load): the warehouse follows.
    import_synthetic(work.path(), &config, 100_000, 12_500, 9_000, 6);
    run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "1"],
    ));
    assert_warehouse_equals_source(work.path(), &url);

    // A manifest put back is loaded once only: nothing changes.
    let loaded = work
        .path()
        .join("lake/exports/_manifests/loaded/user_features");
    let one = std::fs::read_dir(&loaded)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pending = work
        .path()
        .join("lake/exports/_manifests/pending/user_features");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::copy(&one, pending.join(one.file_name().unwrap())).unwrap();
    let before = count(&url, "SELECT COUNT(*) FROM movierec_export_loads");
    let again = summary_of(&run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "0.5"],
    )));
    assert_eq!(again["loads"], 0, "{again}");
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM movierec_export_loads"),
        before
    );
    assert_warehouse_equals_source(work.path(), &url);

    let status = run_ok(&mut cdc(work.path(), &config, &["status", "--json"]));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["waiting_loads"], 0, "{status}");
    assert_eq!(status["shards"][0]["behind"], 0, "{status}");
    assert!(status["last_load"]["load_id"].is_string(), "{status}");
}

#[test]
fn a_poison_change_is_isolated_and_the_rest_loads() {
    let work = workdir();
    let url = fresh_database("poison");
    let config = write_config(work.path(), &url, 64 << 20, 1000);
    run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "0.5"],
    ));
    import_synthetic(work.path(), &config, 20_000, 1_500, 800, 7);
    // Two bad rows in the middle of the log: SQLite keeps what it is given.
    runtime().block_on(async {
        let db = work.path().join("store.db");
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for (key, count) in [(900_001, "many"), (900_002, "12x")] {
            sqlx::query(
                "INSERT INTO feature_changes (table_name, key, op, rating_count, sum_half, sum_sq_quarter, last_update_ms) \
                 VALUES ('user_features', ?, 'U', ?, 1, 1, 0)",
            )
            .bind(key)
            .bind(count)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    });
    import_synthetic(work.path(), &config, 5_000, 1_500, 800, 8);
    let summary = summary_of(&run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "1"],
    )));
    assert_eq!(summary["dead_letters"], 2, "{summary}");
    assert_warehouse_equals_source(work.path(), &url);
    // The dead letters say which rows and why.
    let mut letters = Vec::new();
    let mut stack = vec![work.path().join("lake/exports/_dlq")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                    letters.push(serde_json::from_str::<Value>(line).unwrap());
                }
            }
        }
    }
    let mut keys: Vec<&str> = letters.iter().map(|l| l["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["900001", "900002"]);
    for letter in &letters {
        assert!(
            letter["reason"]
                .as_str()
                .unwrap()
                .contains("invalid input syntax for type bigint"),
            "{letter}"
        );
        assert_eq!(letter["table"], "user_features");
        assert!(letter["load_id"].is_string());
    }
    let status = run_ok(&mut cdc(work.path(), &config, &["status", "--json"]));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["dead_letters"], 2, "{status}");
}

#[test]
fn a_backfill_killed_three_times_resumes_to_an_exact_copy() {
    let work = workdir();
    let url = fresh_database("backfill");
    // Small pages, so a kill lands between many checkpoints.
    let config = write_config(work.path(), &url, 400 * 1024, 500);
    // 50,000 users (and movies) written before the export existed: only a
    // backfill brings them over.
    import_synthetic(work.path(), &config, 200_000, 50_000, 5_000, 9);
    let users = source_rows(&work.path().join("store.db"), "user_features", "user_id");
    assert!(users.len() >= 45_000, "{}", users.len());

    let mut interrupted = 0;
    for kill in 0..3 {
        let mut child = cdc(
            work.path(),
            &config,
            &["backfill", "--table", "user_features"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let state_file = work
            .path()
            .join("lake/exports/_state/backfill-user_features.json");
        let pages_before = pages(&state_file);
        let deadline = Instant::now() + Duration::from_secs(60);
        // A few pages more, then SIGKILL at a different point each time.
        while pages(&state_file) < pages_before + 3 + 7 * kill && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
        println!("kill {kill}: {state}");
        if state["done"] == false {
            interrupted += 1;
        }
    }
    assert_eq!(interrupted, 3, "every kill landed mid-backfill");
    let output = run_ok(&mut cdc(
        work.path(),
        &config,
        &["backfill", "--table", "user_features"],
    ));
    assert_eq!(summary_of(&output)["done"], true);
    let got = warehouse_rows(&url, "user_features", "user_id");
    assert_eq!(got.len(), users.len());
    assert_eq!(got, users);
    // A finished backfill does nothing more.
    let again = summary_of(&run_ok(&mut cdc(
        work.path(),
        &config,
        &["backfill", "--table", "user_features"],
    )));
    assert_eq!(again["summary"]["pages"], 0, "{again}");
    // A bad table name is named.
    let bad = cdc(work.path(), &config, &["backfill", "--table", "users"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("unknown table `users`: expected one of user_features, movie_features")
    );
}

fn pages(state_file: &Path) -> u64 {
    std::fs::read(state_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|state| state["pages"].as_u64())
        .unwrap_or(0)
}

/// A PostgreSQL cluster of this test's own, so restarting it disturbs no other test.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn bin(name: &str) -> String {
        let dir = std::env::var("MOVIEREC_TEST_PG_BIN")
            .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let path = format!("{dir}/{name}");
        assert!(
            Path::new(&path).exists(),
            "{path} not found: install PostgreSQL 15 (`bash scripts/test.sh` does) or set MOVIEREC_TEST_PG_BIN"
        );
        path
    }

    /// Runs a PostgreSQL program, as the `postgres` user when we are root.
    fn as_owner(&self, line: String) {
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let status = if root {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .status()
        } else {
            Command::new("sh").args(["-c", &line]).status()
        }
        .unwrap();
        assert!(status.success(), "{line}");
    }

    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let cluster = Self { dir, port };
        let path = cluster.dir.path().display().to_string();
        Command::new("chmod").args(["777", &path]).status().unwrap();
        cluster.as_owner(format!(
            "{} -D {path}/data -U movierec --auth=trust -E UTF8 >{path}/initdb.log 2>&1",
            Self::bin("initdb")
        ));
        cluster.pg_ctl("start");
        cluster
    }

    fn pg_ctl(&self, action: &str) {
        let path = self.dir.path().display();
        self.as_owner(format!(
            "{} -D {path}/data -l {path}/server.log -w -t 60 -m immediate \
             -o \"-c listen_addresses=127.0.0.1 -p {} -k {path} -c fsync=off\" {action} >/dev/null",
            Self::bin("pg_ctl"),
            self.port
        ));
    }

    fn url(&self) -> String {
        format!("postgres://movierec@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.dir.path().display();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "su postgres -s /bin/sh -c '{} -D {path}/data -m immediate stop' >/dev/null 2>&1 || {} -D {path}/data -m immediate stop >/dev/null 2>&1",
                    Self::bin("pg_ctl"),
                    Self::bin("pg_ctl")
                ),
            ])
            .status();
    }
}

#[test]
fn postgres_restarted_during_loads_ends_complete_and_not_doubled() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let work = workdir();
    // Small files: many loads, so restarts land while loads run.
    let config = write_config(work.path(), &url, 16 * 1024, 1000);
    run_ok(&mut cdc(
        work.path(),
        &config,
        &["run", "--until-idle", "0.5"],
    ));
    import_synthetic(work.path(), &config, 100_000, 12_000, 9_000, 10);
    let child = cdc(work.path(), &config, &["run", "--until-idle", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Restart (immediate mode: connections cut, as in a crash) three times
    // once loads are under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let loads = || {
        runtime().block_on(async {
            let Ok(mut conn) = PgConnection::connect(&url).await else {
                return 0;
            };
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM movierec_export_loads")
                .fetch_one(&mut conn)
                .await
                .unwrap_or(0)
        })
    };
    let mut restarts = 0;
    while restarts < 3 && Instant::now() < deadline {
        if loads() > 5 + 15 * restarts {
            cluster.pg_ctl("restart");
            restarts += 1;
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(restarts, 3, "the loads did not get under way");
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary_of(&output);
    println!("{summary}");
    assert!(summary["load_retries"].as_u64().unwrap() >= 1, "{summary}");
    assert_warehouse_equals_source(work.path(), &url);
    let files = data_files(&work.path().join("lake"));
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM movierec_export_loads") as usize,
        files.len(),
        "each file loaded once"
    );
}

#[test]
fn misconfigured_warehouses_are_named() {
    let work = workdir();
    let run = |warehouse: &str, extra: &str| {
        let config = write_config(work.path(), warehouse, 1 << 20, 100);
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        let output = cdc(work.path(), &config, &["run", "--until-idle", "0.2"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let redshift = "redshift://loader:secret@example.invalid:5439/dev";
    let no_role = run(redshift, "");
    assert!(no_role.contains("export.iam_role is not set"), "{no_role}");
    let local_lake = run(redshift, "  iam_role: \"arn:aws:iam::1:role/copy\"\n");
    assert!(
        local_lake.contains("Redshift loads from S3, but the lake is"),
        "{local_lake}"
    );
    let port = common::free_port();
    let down = run(
        &format!("postgres://movierec:hunter2@127.0.0.1:{port}/w"),
        "",
    );
    assert!(
        down.contains(&format!(
            "cannot connect to postgres://movierec@127.0.0.1:{port}/w"
        )),
        "{down}"
    );
    assert!(!down.contains("hunter2"), "{down}");
    let bad_url = run("mysql://x@127.0.0.1/w", "");
    assert!(bad_url.contains("export.warehouse_url"), "{bad_url}");
}
