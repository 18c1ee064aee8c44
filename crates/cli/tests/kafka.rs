//! Streaming ingestion end to end against a real Kafka-compatible broker
//! (tansu, started by `scripts/test.sh`; its address in MOVIEREC_TEST_KAFKA):
//! `movierec produce` → topic → `movierec consume` → SQLite, dead letters to
//! the DLQ topic, re-ratings and out-of-order events (crashes: chaos.rs).

mod common;
use common::streams::*;
use common::*;
use movierec_core::RatingEvent;
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn every_valid_event_is_reflected_and_every_invalid_one_dead_lettered() {
    let work = workdir();
    let s = stream(work.path(), "exact", 3, "exact", 7000);
    let params = EventStreamParams {
        count: 100_000,
        users: 2000,
        movies: 1500,
        invalid_fraction: 0.01,
        seed: 7,
        ..Default::default()
    };
    let produced = produce(work.path(), &s.config, &params);
    assert!(produced.contains("sent 100000 events"), "{produced}");

    let summary = consume_until_idle(work.path(), &s.config);
    assert_eq!(summary["consumed"], 100_000, "{summary}");

    let generated: Vec<_> = synthetic_events(params).collect();
    let valid: Vec<RatingEvent> = generated
        .iter()
        .filter(|e| e.invalid_reason.is_none())
        .map(|e| RatingEvent::from_json(&e.payload).unwrap())
        .collect();
    let invalid: Vec<_> = generated
        .iter()
        .filter(|e| e.invalid_reason.is_some())
        .collect();
    assert!(invalid.len() > 800, "about 1% invalid: {}", invalid.len());
    assert_eq!(
        summary["dead_lettered"].as_u64().unwrap() as usize,
        invalid.len()
    );
    assert_eq!(
        summary["applied"].as_u64().unwrap() + summary["superseded"].as_u64().unwrap(),
        valid.len() as u64
    );

    let want = expected(valid);
    let got = stored(&work.path().join("exact.db"));
    assert_eq!(got.ratings.len(), want.ratings.len(), "rating count");
    assert_eq!(got, want);
    // avg/std as published derive from these exact integers; spot-check one.
    let (id, acc) = want.movies.iter().max_by_key(|(_, a)| a.count).unwrap();
    let reference: Vec<f64> = want
        .ratings
        .iter()
        .filter(|((_, m), _)| m == id)
        .map(|(_, (h, _))| *h as f64 / 2.0)
        .collect();
    let mean = reference.iter().sum::<f64>() / reference.len() as f64;
    let var =
        reference.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (reference.len() as f64 - 1.0);
    assert!((acc.mean() - mean).abs() < 1e-12);
    assert!((acc.std_dev() - var.sqrt()).abs() < 1e-9);

    // The dead letters: one per invalid event, the original bytes, the reason.
    let listed = run_ok(movierec_with(work.path(), &s.config).args(["dlq", "list", "--json"]));
    let letters: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), invalid.len());
    let mut want_letters: Vec<(String, String)> = invalid
        .iter()
        .map(|e| {
            (
                e.invalid_reason.unwrap().to_string(),
                String::from_utf8_lossy(&e.payload).into_owned(),
            )
        })
        .collect();
    let mut got_letters: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            assert_eq!(l["source_topic"], s.topic.as_str());
            assert!(l["source_offset"].as_i64().is_some());
            assert!(!l["error"].as_str().unwrap().is_empty());
            (
                l["reason"].as_str().unwrap().to_string(),
                l["payload"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want_letters.sort();
    got_letters.sort();
    assert_eq!(got_letters, want_letters);

    // Consuming again changes nothing: the group's progress is kept.
    let again = consume_until_idle(work.path(), &s.config);
    assert_eq!(again["consumed"], 0, "{again}");
    assert_eq!(stored(&work.path().join("exact.db")), got);
}

#[test]
fn rerating_and_out_of_order_events_for_one_user_and_movie() {
    let work = workdir();
    let s = stream(work.path(), "order", 1, "order", 100);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let events = [
        r#"{"user_id": 1, "movie_id": 10, "rating": 4.0, "timestamp": "2025-03-15T10:00:00"}"#,
        r#"{"user_id": 2, "movie_id": 10, "rating": 2.0, "timestamp": "2025-03-15T10:00:00"}"#,
        // Older than what user 1 already has for movie 10: must not win.
        r#"{"user_id": 1, "movie_id": 10, "rating": 0.5, "timestamp": "2025-03-14T09:00:00"}"#,
        // A re-rating: replaces 4.0 in both feature rows.
        r#"{"user_id": 1, "movie_id": 10, "rating": 5.0, "timestamp": 1742036400}"#,
        r#"{"user_id": 1, "movie_id": 11, "rating": 3.0, "timestamp": "2025-03-15T12:00:00Z"}"#,
        r#"{"user_id": 1, "movie_id": 10, "rating": "five", "timestamp": 1742036400}"#,
    ];
    runtime().block_on(async {
        for payload in events {
            producer
                .send(
                    FutureRecord::to(&s.topic).key("1").payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
    let summary = consume_until_idle(work.path(), &s.config);
    assert_eq!(summary["consumed"], 6, "{summary}");
    assert_eq!(summary["dead_lettered"], 1);
    assert_eq!(summary["superseded"], 1);

    let state = stored(&work.path().join("order.db"));
    assert_eq!(state.ratings.len(), 3);
    // 1742036400 = 2025-03-15T11:00:00Z
    assert_eq!(state.ratings[&(1, 10)], (10, 1_742_036_400_000));
    let movie = state.movies[&10];
    assert_eq!((movie.count, movie.mean()), (2, 3.5));
    assert!((movie.std_dev() - 2.1213203435596424).abs() < 1e-12);
    let user = state.users[&1];
    assert_eq!((user.count, user.mean()), (2, 4.0));
    assert_eq!(user.last_update_ms, 1_742_040_000_000);
    let want = expected(
        events
            .iter()
            .filter_map(|p| RatingEvent::from_json(p.as_bytes()).ok()),
    );
    assert_eq!(state, want);
}

#[test]
fn with_kafka_the_api_produces_and_the_server_consumes() {
    let work = workdir();
    let s = stream(work.path(), "api", 2, "api", 100);
    let config = s.config.display().to_string();
    let server = start(work.path(), &["--config", &config, "serve"], &[]);
    let base = &server.base;

    let (status, body) = post(
        base,
        "/api/ratings",
        r#"{"user_id": 42, "movie_id": 7, "rating": 3.5, "timestamp": "2025-03-15T10:30:00"}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["topic"], s.topic.as_str());
    assert!(body["offset"].as_i64().is_some());
    let (status, body) = post(base, "/api/ratings", r#"{"user_id": 42}"#);
    assert_eq!(
        status, 400,
        "invalid events are refused at the door: {body}"
    );

    // The server's own consumer applies it.
    let db = work.path().join("api.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed_positions(&db, &s.topic) < 1 {
        assert!(
            Instant::now() < deadline,
            "the consumer did not apply the posted rating"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let state = stored(&db);
    assert_eq!(state.ratings[&(42, 7)].0, 7);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, health) = get(base, "/health");
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["kafka"]["status"], "connected");
        let consumer = &health["kafka"]["consumer"];
        assert_eq!(consumer["consumer_running"], true);
        if consumer["events_accepted"] == 1 && consumer["broker"]["status"] == "connected" {
            assert!(consumer["consumer_lag"].as_i64().unwrap() >= 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never showed the event: {health}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, metrics) = get(base, "/metrics");
    let text = metrics.as_str().unwrap();
    assert!(text.contains("movierec_events_accepted_total 1"), "{text}");
    assert!(text.contains("movierec_batches_total"));
    assert!(text.contains("movierec_consumer_lag"));

    // SIGTERM: the server and its consumer stop cleanly.
    let mut server = server;
    stop_with_sigterm(&mut server, 30);
}

#[test]
fn health_is_503_naming_an_unreachable_broker() {
    let work = workdir();
    let config = work.path().join("down.yaml");
    std::fs::write(
        &config,
        "kafka: { enabled: true, bootstrap_servers: \"127.0.0.1:1\" }\n",
    )
    .unwrap();
    let server = start(
        work.path(),
        &["--config", &config.display().to_string(), "serve"],
        &[],
    );
    let (status, health) = get(&server.base, "/health");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["kafka"]["status"], "unreachable");
    let failures = health["failures"].to_string();
    assert!(
        failures.contains("kafka") && failures.contains("127.0.0.1:1"),
        "{failures}"
    );
    // Posting a rating fails clearly rather than hanging forever.
    let (status, body) = post(
        &server.base,
        "/api/ratings",
        r#"{"user_id": 1, "movie_id": 2, "rating": 4, "timestamp": 1}"#,
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1")
    );
}

#[test]
fn dead_letters_can_be_listed_and_replayed() {
    let work = workdir();
    let s = stream(work.path(), "replay", 1, "replay", 100);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let bad_rating = r#"{"user_id": 5, "movie_id": 6, "rating": 5.5, "timestamp": 1}"#;
    runtime().block_on(async {
        for payload in [
            r#"{"user_id": 5, "movie_id": 7, "rating": 4.5, "timestamp": 1}"#,
            bad_rating,
            "{oops",
        ] {
            producer
                .send(
                    FutureRecord::to(&s.topic).key("5").payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
    assert_eq!(
        consume_until_idle(work.path(), &s.config)["dead_lettered"],
        2
    );

    let listed = run_ok(movierec_with(work.path(), &s.config).args(["dlq", "list"]));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("2 dead letters"), "{text}");
    assert!(
        text.contains("bad_rating") && text.contains("bad_json"),
        "{text}"
    );

    // Nothing is valid by today's rules: nothing is re-sent by default.
    let replayed = run_ok(movierec_with(work.path(), &s.config).args(["dlq", "replay"]));
    let text = String::from_utf8_lossy(&replayed.stdout);
    assert!(text.contains("re-sent 0 events; 2 still invalid"), "{text}");

    // Forced, filtered, to another topic: it arrives there with its bytes.
    let other = stream(work.path(), "replayed", 1, "replayed", 100);
    let replayed = run_ok(movierec_with(work.path(), &s.config).args([
        "dlq",
        "replay",
        "--reason",
        "bad_rating",
        "--include-invalid",
        "--to",
        &other.topic,
    ]));
    let text = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        text.contains("re-sent 1 events") && text.contains("1 filtered out"),
        "{text}"
    );
    assert_eq!(
        consume_until_idle(work.path(), &other.config)["dead_lettered"],
        1
    );
    let listed = run_ok(movierec_with(work.path(), &other.config).args(["dlq", "list", "--json"]));
    let letter: Value =
        serde_json::from_str(String::from_utf8_lossy(&listed.stdout).trim()).unwrap();
    assert_eq!(letter["reason"], "bad_rating");
    assert_eq!(letter["payload"], bad_rating);
    assert_eq!(letter["source_topic"], other.topic.as_str());
}

#[test]
fn a_movielens_replay_consumed_equals_the_import() {
    let work = workdir();
    let s = stream(work.path(), "replay-ml", 3, "replayed-ml", 20_000);
    let dir = movielens("ml-latest-small");
    let sent = run_ok(
        movierec_with(work.path(), &s.config)
            .args(["produce", "--replay"])
            .arg(dir.join("ratings.csv")),
    );
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("sent 100836 events"),
        "{}",
        String::from_utf8_lossy(&sent.stdout)
    );
    let summary = consume_until_idle(work.path(), &s.config);
    assert_eq!(summary["consumed"], 100_836, "{summary}");
    assert_eq!(summary["dead_lettered"], 0);

    let imported = work.path().join("imported.yaml");
    std::fs::write(
        &imported,
        format!(
            "sqlite:\n  path: \"{}\"\n",
            work.path().join("imported.db").display()
        ),
    )
    .unwrap();
    run_ok(
        movierec_with(work.path(), &imported)
            .args(["import", "movielens"])
            .arg(&dir),
    );
    let consumed = stored(&work.path().join("replayed-ml.db"));
    assert_eq!(consumed.ratings.len(), 100_836);
    assert_eq!(consumed, stored(&work.path().join("imported.db")));
}

#[test]
fn two_consumers_in_one_group_through_a_rebalance_count_each_event_once() {
    let work = workdir();
    let s = stream(work.path(), "group", 4, "group", 2000);
    let params = EventStreamParams {
        count: 120_000,
        users: 3000,
        movies: 1000,
        invalid_fraction: 0.0,
        seed: 5,
        ..Default::default()
    };
    produce(work.path(), &s.config, &params);
    // The second consumer joins while the first is busy: a rebalance moves
    // partitions between them mid-stream. Both write to the same store.
    let spawn = || {
        movierec_with(work.path(), &s.config)
            .args(["consume", "--until-idle", "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    let db = work.path().join("group.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed_positions(&db, &s.topic) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn();
    let mut consumed = 0;
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let summary: Value = serde_json::from_str(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        consumed += summary["consumed"].as_i64().unwrap();
    }
    assert!(consumed >= 120_000, "{consumed}");
    assert_eq!(consumed_positions(&db, &s.topic), 120_000);
    let valid = synthetic_events(params).map(|e| RatingEvent::from_json(&e.payload).unwrap());
    assert_eq!(stored(&db), expected(valid));
}

/// `movierec bench ingest`: a well-formed report for a backlog and an
/// offered rate on a small stream (the figures are benchmarks, not asserted;
/// that every event was consumed once and every malformed one dead-lettered is).
#[test]
fn bench_ingest_reports_throughput_and_lag_with_every_event_once() {
    let work = workdir();
    let output = run_ok(
        movierec(work.path())
            .env("MOVIEREC_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
            .args([
                "bench",
                "ingest",
                "--events",
                "3000",
                "--rates",
                "max,1500",
                "--partitions",
                "2",
                "--repeats",
                "1",
                "--invalid-fraction",
                "0.02",
                "--idle",
                "1.5",
                "--out",
                "report",
            ]),
    );
    let dir = work.path().join("report");
    let md = std::fs::read_to_string(dir.join("bench-ingest.md")).unwrap();
    let svg = std::fs::read_to_string(dir.join("bench-ingest.svg")).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench-ingest.json")).unwrap())
            .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("# Ingestion benchmark"),
        "the report is printed too"
    );
    assert!(md.contains("| Offered rate | Produced events/s |"), "{md}");
    for rate in ["| max |", "| 1500/s |"] {
        assert!(md.contains(rate), "no row {rate}:\n{md}");
    }
    assert!(
        !md.contains("| NO |"),
        "an event was lost or doubled:\n{md}"
    );
    assert!(
        svg.starts_with("<svg") && svg.matches("<rect").count() >= 2,
        "{svg}"
    );
    assert!(
        !dir.join("bench-ingest-work").exists(),
        "work files are removed"
    );

    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{json:#}");
    for run in runs {
        assert_eq!(run["events"], 3000, "{run:#}");
        assert_eq!(run["consumed"], 3000, "every event consumed once: {run:#}");
        let malformed = run["malformed"].as_u64().unwrap();
        assert!(
            malformed > 0,
            "the stream carries malformed events: {run:#}"
        );
        assert_eq!(run["dead_lettered"].as_u64(), Some(malformed), "{run:#}");
        assert!(run["consumed_per_s"].as_f64().unwrap() > 0.0, "{run:#}");
        assert!(
            run["consumer_peak_rss_mib"].as_f64().unwrap() > 0.0,
            "{run:#}"
        );
    }
    let rated = &runs[1];
    assert_eq!(rated["requested_per_s"], 1500.0);
    // 3,000 events at 1,500/s: about two seconds of production.
    assert!(
        rated["produced_per_s"].as_f64().unwrap() < 1600.0,
        "the producer kept the offered rate: {rated:#}"
    );
    assert!(
        rated["lag_samples"].as_u64().unwrap() >= 5,
        "lag was sampled: {rated:#}"
    );
    assert!(
        rated["catch_up_s"].is_number(),
        "the group caught up: {rated:#}"
    );
    let summaries = json["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|s| s["complete"] == true), "{json:#}");
}

#[test]
fn bench_ingest_names_bad_rates_and_an_unreachable_broker() {
    let work = workdir();
    let output = movierec(work.path())
        .args(["bench", "ingest", "--rates", "max,fast"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`fast` is neither `max` nor a positive number"),
        "{stderr}"
    );

    let output = movierec(work.path())
        .env(
            "MOVIEREC_KAFKA__BOOTSTRAP_SERVERS",
            format!("127.0.0.1:{}", free_port()),
        )
        .args([
            "bench",
            "ingest",
            "--events",
            "10",
            "--repeats",
            "1",
            "--rates",
            "max",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bench ingest needs a Kafka broker at 127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn bench_soak_reports_memory_errors_and_lag_with_every_event_committed() {
    let work = workdir();
    run_ok(
        movierec(work.path())
            .env("MOVIEREC_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
            .env("MOVIEREC_DATA__SAMPLE_RATINGS", "20000")
            .args([
                "bench",
                "soak",
                "--seconds",
                "15",
                "--events-per-s",
                "2000",
                "--requests-per-s",
                "100",
                "--out",
                "report",
            ]),
    );
    let dir = work.path().join("report");
    let md = std::fs::read_to_string(dir.join("bench-soak.md")).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench-soak.json")).unwrap())
            .unwrap();
    for section in [
        "## Verdict",
        "| memory stays flat |",
        "| lag bounded (from the first commit) |",
        "| the store's WAL stays bounded (checkpoints keep up) |",
        "## API",
    ] {
        assert!(md.contains(section), "no {section}:\n{md}");
    }
    assert_eq!(json["api_errors"], 0, "{md}");
    assert_eq!(json["events_sent"], 30_000, "{md}");
    assert_eq!(
        json["events_committed"], json["events_sent"],
        "every event consumed:\n{md}"
    );
    let samples = json["samples"].as_array().unwrap();
    assert!(samples.len() >= 15, "a sample a second: {}", samples.len());
    assert!(
        samples.iter().all(|s| s["rss_mib"].as_f64().unwrap() > 1.0),
        "{md}"
    );
    // The store's files are watched too: they hold the events (in the WAL
    // until a checkpoint, which 64 MiB of WAL triggers: not in 15 s).
    let last = samples.last().unwrap();
    assert!(
        last["db_mib"].as_f64().unwrap() + last["wal_mib"].as_f64().unwrap() > 0.5,
        "{md}"
    );
    assert!(json["wal_max_mib"].as_f64().unwrap() > 0.0, "{md}");
    // The bounded caches, read from /metrics: SQLite's allocations (its page
    // caches hold at least the schema's pages by now) and librdkafka's
    // fetch queue (statistics every second: numbers from the second on).
    let sqlite = last["sqlite_mib"].as_f64().expect("sqlite_mib reported");
    assert!(
        sqlite > 0.05 && sqlite < last["rss_mib"].as_f64().unwrap(),
        "{md}"
    );
    assert!(last["fetch_queue_messages"].as_f64().is_some(), "{md}");
    assert!(last["fetch_queue_mib"].as_f64().unwrap() >= 0.0, "{md}");
    assert!(json["rest_end_mib"].as_f64().unwrap() > 1.0, "{md}");
    assert!(
        md.contains("| memory outside the bounded caches stays flat |"),
        "{md}"
    );
    for slope in ["rss_slope_mib_per_min", "rss_slope_last_half_mib_per_min"] {
        assert!(json[slope].as_f64().unwrap().is_finite(), "{slope}: {md}");
    }
    assert!(md.contains("over the second half"), "{md}");
    let requests: u64 = json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requests"].as_u64().unwrap())
        .sum();
    assert!(requests >= 1400, "~1,500 requests offered, {requests} sent");
    println!("{md}");

    // Bad input is named before anything starts.
    let output = movierec(work.path())
        .env("MOVIEREC_KAFKA__BOOTSTRAP_SERVERS", bootstrap())
        .args(["bench", "soak", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--seconds: expected at least 5"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
