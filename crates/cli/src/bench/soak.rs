//! `movierec bench soak`: the whole platform under a steady mixed load for a
//! long stretch. `movierec up` runs as a child with a store, sample data and
//! Kafka topics of its own, so its in-process consumer ingests what this
//! process produces at `--events-per-s` while the API answers
//! `--requests-per-s` (half top lists, half users' recommendations, an open
//! loop). Every second the server's resident memory, the two caches in it
//! that fill up to a bound (SQLite's, librdkafka's fetch queue, from
//! `/metrics`) and the consumer's committed position are sampled.
//!
//! What it reports is what SPEC promises under load (docs/RELIABILITY.md):
//! memory stays flat (the growth over the run, and its fitted slope after a
//! warm-up), no request or produce fails, the lag stays bounded, and every
//! produced event is committed by the end.

use super::serve::{ServeBench, Server, Tally, Target, load_client, one_run, wait_healthy};
use super::{Rate, environment, fit_line, median, proc_status_mib, quantile};
use anyhow::{Context, Result, bail, ensure};
use movierec_config::KafkaConfig;
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use movierec_kafka::admin::{LagProbe, create_topic, delete_topics};
use movierec_kafka::producer::BulkProducer;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the load generator's producer gathers a batch (see
/// [`load_producer_config`]).
const LOAD_LINGER_MS: u32 = 100;

/// The server's SQLite store, in the run's work folder.
const STORE_FILE: &str = "store.db";

/// What `movierec bench soak` was asked.
#[derive(Debug, Clone)]
pub struct SoakBench {
    pub seconds: f64,
    pub events_per_s: f64,
    pub requests_per_s: f64,
    pub partitions: i32,
    pub users: u64,
    pub movies: u64,
    pub seed: u64,
    pub out: PathBuf,
    pub config_file: Option<PathBuf>,
    pub kafka: KafkaConfig,
}

/// One sample a second.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    at_s: f64,
    rss_mib: f64,
    /// What SQLite has allocated (page caches, statements):
    /// `movierec_sqlite_memory_bytes`.
    sqlite_mib: f64,
    /// What librdkafka has fetched ahead of the consumer (payload bytes and
    /// messages): `movierec_consumer_fetch_queue_{bytes,messages}`.
    fetch_queue_mib: f64,
    fetch_queue_messages: f64,
    /// The store's database file and its write-ahead log: the WAL is what
    /// could grow unseen if checkpoints fell behind the writes.
    db_mib: f64,
    wal_mib: f64,
    /// Events handed to the producer so far.
    sent: u64,
    /// Events the consumer has committed (its group's offsets in Kafka).
    committed: u64,
}

impl Sample {
    /// Memory outside the two bounded caches.
    fn rest_mib(&self) -> f64 {
        self.rss_mib - self.sqlite_mib - self.fetch_queue_mib
    }
}

#[derive(Debug, Clone, Serialize)]
struct Endpoint {
    target: String,
    requests: usize,
    achieved_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: usize,
    first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Outcome {
    seconds: f64,
    events_per_s_offered: f64,
    events_sent: u64,
    events_committed: u64,
    events_per_s_achieved: f64,
    requests_per_s_offered: f64,
    endpoints: Vec<Endpoint>,
    api_errors: usize,
    /// Median resident memory over the first and the last tenth of the run.
    rss_start_mib: f64,
    rss_end_mib: f64,
    rss_max_mib: f64,
    /// Least-squares slope after the first fifth (warm-up), MiB per minute.
    rss_slope_mib_per_min: f64,
    /// The same over the second half: caches that fill for minutes (SQLite's
    /// page cache grows with the store) level off; a leak does not.
    rss_slope_last_half_mib_per_min: f64,
    /// The same three for the rest of the memory: RSS less SQLite's
    /// allocations and the fetch queue's payload, the part with no bound of
    /// its own.
    rest_start_mib: f64,
    rest_end_mib: f64,
    rest_slope_last_half_mib_per_min: f64,
    sqlite_end_mib: f64,
    fetch_queue_end_mib: f64,
    db_end_mib: f64,
    wal_max_mib: f64,
    lag_p50_events: f64,
    lag_p99_events: f64,
    lag_max_events: f64,
    /// Seconds after the last event until every event was committed.
    catch_up_s: Option<f64>,
    server_cpu_cores: Option<f64>,
    samples: Vec<Sample>,
}

pub async fn run(bench: &SoakBench) -> Result<()> {
    ensure!(
        bench.seconds >= 5.0 && bench.seconds.is_finite(),
        "--seconds: expected at least 5"
    );
    ensure!(
        bench.events_per_s > 0.0 && bench.events_per_s.is_finite(),
        "--events-per-s: expected a positive rate"
    );
    ensure!(
        bench.requests_per_s > 0.0 && bench.requests_per_s.is_finite(),
        "--requests-per-s: expected a positive rate"
    );
    ensure!(bench.partitions >= 1, "--partitions: expected at least 1");
    let work = bench.out.join("bench-soak-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let id = format!(
        "movierec-soak-{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    let (topic, dlq) = (id.clone(), format!("{id}-dlq"));
    create_topic(&bench.kafka, &topic, bench.partitions)
        .await
        .with_context(|| {
            format!(
                "bench soak needs a Kafka broker at {} (kafka.bootstrap_servers) that lets it create topics",
                bench.kafka.bootstrap_servers
            )
        })?;
    create_topic(&bench.kafka, &dlq, 1).await?;
    let outcome = soak(bench, &work, &topic, &dlq, &id).await;
    let left = delete_topics(&bench.kafka, &[&topic, &dlq]).await;
    if !left.is_empty() {
        tracing::warn!("could not delete the soak topics {left:?}");
    }
    let outcome = outcome?;
    write_report(bench, &outcome)?;
    if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&work).ok();
    }
    Ok(())
}

fn start_platform(
    bench: &SoakBench,
    work: &Path,
    topic: &str,
    dlq: &str,
    group: &str,
) -> Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = std::env::current_exe().context("cannot find the movierec binary")?;
    let mut command = Command::new(bin);
    if let Some(file) = &bench.config_file {
        command.arg("--config").arg(file);
    }
    let store = work.join(STORE_FILE);
    let child = command
        .arg("up")
        .env("MOVIEREC_STORAGE_MODE", "sqlite")
        .env("MOVIEREC_SQLITE__PATH", &store)
        .env(
            "MOVIEREC_SERVING__DATABASE_URL",
            format!("sqlite://{}", store.display()),
        )
        .env("MOVIEREC_DATA__DIR", work.join("data"))
        .env("MOVIEREC_LAKE__ROOT", work.join("lake"))
        .env("MOVIEREC_SERVING__HOST", "127.0.0.1")
        .env("MOVIEREC_SERVING__PORT", port.to_string())
        .env("MOVIEREC_KAFKA__ENABLED", "true")
        .env("MOVIEREC_KAFKA__TOPIC", topic)
        .env("MOVIEREC_KAFKA__DLQ_TOPIC", dlq)
        .env("MOVIEREC_KAFKA__GROUP_ID", group)
        .env("MOVIEREC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(work.join("up.out"))?)
        .stderr(std::fs::File::create(work.join("up.log"))?)
        .spawn()
        .context("cannot start `movierec up`")?;
    Ok((
        Server {
            child,
            log: work.join("up.log"),
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

/// The load generator's producer lingers [`LOAD_LINGER_MS`] unless
/// `kafka.properties` sets `linger.ms`. The test broker, tansu, lists every
/// batch it stores on each fetch, so its fetches cost more the more batches
/// a run has produced: with the bulk producer's 20 ms, tansu went from 0.13
/// to 0.59 cores within three minutes of a 20,000 events/s soak, taken from
/// the consumer on the same cores. A real Kafka broker finds an offset in an
/// index; the producer's batching is the test's, not the platform's.
fn load_producer_config(kafka: &KafkaConfig) -> KafkaConfig {
    let mut kafka = kafka.clone();
    kafka
        .properties
        .entry("linger.ms".into())
        .or_insert_with(|| LOAD_LINGER_MS.to_string());
    kafka
}

/// The bounded caches' sizes as `/metrics` last reported them; NaN until
/// the first answer (or with a server too old to report them).
#[derive(Debug, Clone, Copy)]
struct CacheGauges {
    sqlite_mib: f64,
    fetch_queue_mib: f64,
    fetch_queue_messages: f64,
}

impl Default for CacheGauges {
    fn default() -> Self {
        Self {
            sqlite_mib: f64::NAN,
            fetch_queue_mib: f64::NAN,
            fetch_queue_messages: f64::NAN,
        }
    }
}

impl CacheGauges {
    fn parse(exposition: &str) -> Self {
        const MIB: f64 = 1024.0 * 1024.0;
        Self {
            sqlite_mib: gauge(exposition, "movierec_sqlite_memory_bytes") / MIB,
            fetch_queue_mib: gauge(exposition, "movierec_consumer_fetch_queue_bytes") / MIB,
            fetch_queue_messages: gauge(exposition, "movierec_consumer_fetch_queue_messages"),
        }
    }
}

/// One unlabelled series' value in Prometheus' text exposition.
fn gauge(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN)
}

/// Reads `/metrics` once a second into `latest` until aborted.
async fn watch_caches(client: reqwest::Client, url: String, latest: Arc<Mutex<CacheGauges>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(response) = client.get(&url).send().await else {
            continue;
        };
        if let Ok(text) = response.text().await {
            *latest.lock().unwrap_or_else(|e| e.into_inner()) = CacheGauges::parse(&text);
        }
    }
}

/// Produces synthetic events at the offered rate for the run's length.
fn produce(bench: &SoakBench, topic: &str, sent: &AtomicU64) -> Result<()> {
    let producer = BulkProducer::new(&load_producer_config(&bench.kafka))?;
    let params = EventStreamParams {
        count: (bench.events_per_s * bench.seconds) as u64,
        users: bench.users,
        movies: bench.movies,
        invalid_fraction: 0.001,
        seed: bench.seed,
        ..Default::default()
    };
    let started = Instant::now();
    for (i, event) in synthetic_events(params).enumerate() {
        let due = Duration::from_secs_f64(i as f64 / bench.events_per_s);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
        producer.send(topic, event.key.as_bytes(), &event.payload)?;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(producer.flush(Duration::from_secs(120))?)
}

async fn soak(
    bench: &SoakBench,
    work: &Path,
    topic: &str,
    dlq: &str,
    group: &str,
) -> Result<Outcome> {
    let (mut server, base) = start_platform(bench, work, topic, dlq, group)?;
    let client = load_client(64)?;
    // `up` imports its sample data and runs the batch before it serves.
    wait_healthy(&client, &base, Some(&mut server)).await?;
    let pid = server.child.id();
    let store = work.join(STORE_FILE);
    let wal = work.join(format!("{STORE_FILE}-wal"));
    let probe = LagProbe::new(&bench.kafka, group, topic, bench.partitions)?;

    let caches = Arc::new(Mutex::new(CacheGauges::default()));
    let watcher = tokio::spawn(watch_caches(
        client.clone(),
        format!("{base}/metrics"),
        caches.clone(),
    ));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (bench, topic, sent, producing) = (
            bench.clone(),
            topic.to_string(),
            sent.clone(),
            producing.clone(),
        );
        std::thread::spawn(move || {
            let result = produce(&bench, &topic, &sent);
            producing.store(false, Ordering::Relaxed);
            result
        })
    };
    let started = Instant::now();
    let cpu_before = server.cpu_s();
    let sampler = {
        let (sent, producing, caches) = (sent.clone(), producing.clone(), caches.clone());
        let file_mib = |path: &Path| {
            std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
        };
        let total = (bench.events_per_s * bench.seconds) as u64;
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut drained_at = None;
            let mut last_event_at = None;
            loop {
                let at = started.elapsed();
                let committed = probe
                    .sample(Duration::from_secs(2))
                    .map(|s| s.committed.max(0) as u64)
                    .unwrap_or(0);
                let sent_now = sent.load(Ordering::Relaxed);
                let cache = *caches.lock().unwrap_or_else(|e| e.into_inner());
                samples.push(Sample {
                    at_s: at.as_secs_f64(),
                    rss_mib: proc_status_mib(pid, "VmRSS:").unwrap_or(f64::NAN),
                    sqlite_mib: cache.sqlite_mib,
                    fetch_queue_mib: cache.fetch_queue_mib,
                    fetch_queue_messages: cache.fetch_queue_messages,
                    db_mib: file_mib(&store),
                    wal_mib: file_mib(&wal),
                    sent: sent_now,
                    committed,
                });
                if !producing.load(Ordering::Relaxed) {
                    let last = *last_event_at.get_or_insert(at);
                    if committed >= sent_now && sent_now >= total {
                        drained_at = Some((at - last).as_secs_f64());
                        break;
                    }
                    if at - last > Duration::from_secs(120) {
                        break;
                    }
                }
                if let Some(rest) = Duration::from_secs(1).checked_sub(started.elapsed() - at) {
                    std::thread::sleep(rest);
                }
            }
            (samples, drained_at)
        })
    };

    // The API load, beside the stream: two open loops at half the rate each.
    let serve_bench = ServeBench {
        url: Some(base.clone()),
        targets: Vec::new(),
        rates: Vec::new(),
        duration_s: bench.seconds,
        warmup_s: 0.0,
        connections: 64,
        repeats: 1,
        users: Some(bench.users),
        seed: bench.seed,
        out: bench.out.clone(),
        config_file: None,
    };
    let half = Rate::PerSecond(bench.requests_per_s / 2.0);
    let top: Target = "top".parse().map_err(anyhow::Error::msg)?;
    let user: Target = "user".parse().map_err(anyhow::Error::msg)?;
    let (top_tally, user_tally) = tokio::join!(
        one_run(
            &serve_bench,
            &client,
            &base,
            &top,
            half,
            bench.users,
            bench.seed
        ),
        one_run(
            &serve_bench,
            &client,
            &base,
            &user,
            half,
            bench.users,
            bench.seed ^ 1
        ),
    );
    let produced = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?;
    let (samples, catch_up_s) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler thread panicked"))?;
    watcher.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu_cores = match (cpu_before, server.cpu_s()) {
        (Some(before), Some(after)) => Some((after - before) / elapsed),
        _ => None,
    };
    if let Ok(Some(status)) = server.child.try_wait() {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        bail!("`movierec up` exited ({status}) during the soak:\n{log}");
    }
    drop(server);
    produced.context("producing the soak's events failed")?;
    Ok(summarise(
        bench,
        samples,
        catch_up_s,
        server_cpu_cores,
        [("top", top_tally), ("user", user_tally)],
    ))
}

fn endpoint(target: &str, tally: Tally, seconds: f64) -> Endpoint {
    let mut latencies = tally.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    Endpoint {
        target: target.to_string(),
        requests: latencies.len() + tally.errors,
        achieved_per_s: latencies.len() as f64 / seconds,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        errors: tally.errors,
        first_error: tally.first_error,
    }
}

fn summarise(
    bench: &SoakBench,
    samples: Vec<Sample>,
    catch_up_s: Option<f64>,
    server_cpu_cores: Option<f64>,
    tallies: [(&str, Tally); 2],
) -> Outcome {
    let endpoints: Vec<Endpoint> = tallies
        .into_iter()
        .map(|(target, tally)| endpoint(target, tally, bench.seconds))
        .collect();
    let during: Vec<&Sample> = samples.iter().filter(|s| s.at_s <= bench.seconds).collect();
    let tenth = (during.len() / 10).max(1);
    let rss = |part: &[&Sample]| median(&part.iter().map(|s| s.rss_mib).collect::<Vec<_>>());
    let slope_from = |first: usize, mib: fn(&Sample) -> f64| {
        let (_, per_s) = fit_line(
            &during[first.min(during.len())..]
                .iter()
                .map(|s| (s.at_s, mib(s)))
                .filter(|(_, y)| y.is_finite())
                .collect::<Vec<_>>(),
        );
        per_s * 60.0
    };
    let rest = |part: &[&Sample]| {
        median(
            &part
                .iter()
                .map(|s| s.rest_mib())
                .filter(|y| y.is_finite())
                .collect::<Vec<_>>(),
        )
    };
    let first_tenth = &during[..tenth.min(during.len())];
    let last_tenth = &during[during.len().saturating_sub(tenth)..];
    // From the consumer's first commit: before it, the lag only says how long
    // the group took to form, which the report's table shows.
    let mut lags: Vec<f64> = during
        .iter()
        .skip_while(|s| s.committed == 0)
        .map(|s| s.sent.saturating_sub(s.committed) as f64)
        .collect();
    lags.sort_by(f64::total_cmp);
    let last = samples.last();
    Outcome {
        seconds: bench.seconds,
        events_per_s_offered: bench.events_per_s,
        events_sent: last.map_or(0, |s| s.sent),
        events_committed: last.map_or(0, |s| s.committed),
        events_per_s_achieved: last.map_or(0.0, |s| s.sent as f64) / bench.seconds,
        requests_per_s_offered: bench.requests_per_s,
        api_errors: endpoints.iter().map(|e| e.errors).sum(),
        endpoints,
        rss_start_mib: rss(first_tenth),
        rss_end_mib: rss(last_tenth),
        rss_max_mib: samples.iter().map(|s| s.rss_mib).fold(f64::NAN, f64::max),
        rss_slope_mib_per_min: slope_from(during.len() / 5, |s| s.rss_mib),
        rss_slope_last_half_mib_per_min: slope_from(during.len() / 2, |s| s.rss_mib),
        rest_start_mib: rest(first_tenth),
        rest_end_mib: rest(last_tenth),
        rest_slope_last_half_mib_per_min: slope_from(during.len() / 2, Sample::rest_mib),
        sqlite_end_mib: median(&last_tenth.iter().map(|s| s.sqlite_mib).collect::<Vec<_>>()),
        fetch_queue_end_mib: median(
            &last_tenth
                .iter()
                .map(|s| s.fetch_queue_mib)
                .collect::<Vec<_>>(),
        ),
        db_end_mib: last.map_or(f64::NAN, |s| s.db_mib),
        wal_max_mib: samples.iter().map(|s| s.wal_mib).fold(f64::NAN, f64::max),
        lag_p50_events: quantile(&lags, 0.5),
        lag_p99_events: quantile(&lags, 0.99),
        lag_max_events: lags.last().copied().unwrap_or(f64::NAN),
        catch_up_s,
        server_cpu_cores,
        samples,
    }
}

fn write_report(bench: &SoakBench, o: &Outcome) -> Result<()> {
    std::fs::create_dir_all(&bench.out)?;
    let mut md = String::new();
    md.push_str("# Soak: the consumer and the API under a steady load\n\n");
    md.push_str(&format!(
        "`movierec bench soak --seconds {} --events-per-s {} --requests-per-s {}` \
         ({} partitions, {} users, {} movies, seed {}): `movierec up` on its own sample \
         data and SQLite store, its consumer reading what this bench produces, its API \
         answering top lists and users' recommendations (half each, an open loop). \
         The producer batches up to {} ms (`linger.ms`).\n\n",
        bench.seconds,
        bench.events_per_s,
        bench.requests_per_s,
        bench.partitions,
        bench.users,
        bench.movies,
        bench.seed,
        load_producer_config(&bench.kafka).properties["linger.ms"]
    ));
    md.push_str(&format!("{}\n\n", environment()));
    // What the server was told beyond the bench's own settings.
    if let Some(file) = &bench.config_file {
        md.push_str(&format!("Configuration: `{}`.\n\n", file.display()));
    }
    let overrides: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MOVIEREC_"))
        .map(|(k, v)| format!("`{k}={}`", shown_value(&k, &v)))
        .collect();
    if !overrides.is_empty() {
        md.push_str(&format!("Environment: {}\n\n", overrides.join(", ")));
    }
    let lag_s = |events: f64| events / bench.events_per_s;
    md.push_str("## Verdict\n\n| promise | measured |\n| --- | --- |\n");
    md.push_str(&format!(
        "| memory stays flat | {:.0} MiB in the first tenth, {:.0} MiB in the last (max {:.0}); slope after warm-up {:+.2} MiB/min, over the second half {:+.2} MiB/min |\n",
        o.rss_start_mib,
        o.rss_end_mib,
        o.rss_max_mib,
        o.rss_slope_mib_per_min,
        o.rss_slope_last_half_mib_per_min
    ));
    md.push_str(&format!(
        "| memory outside the bounded caches stays flat | {:.0} MiB in the first tenth, {:.0} MiB in the last; over the second half {:+.2} MiB/min (RSS less SQLite's allocations, {:.0} MiB at the end, and the Kafka fetch queue's payload, {:.0} MiB at the end) |\n",
        o.rest_start_mib,
        o.rest_end_mib,
        o.rest_slope_last_half_mib_per_min,
        o.sqlite_end_mib,
        o.fetch_queue_end_mib
    ));
    md.push_str(&format!(
        "| no errors | {} failed requests of {}; the producer delivered every event |\n",
        o.api_errors,
        o.endpoints.iter().map(|e| e.requests).sum::<usize>()
    ));
    md.push_str(&format!(
        "| lag bounded (from the first commit) | p50 {:.0} events ({:.2} s), p99 {:.0} ({:.2} s), max {:.0} ({:.2} s) |\n",
        o.lag_p50_events,
        lag_s(o.lag_p50_events),
        o.lag_p99_events,
        lag_s(o.lag_p99_events),
        o.lag_max_events,
        lag_s(o.lag_max_events)
    ));
    md.push_str(&format!(
        "| the store's WAL stays bounded (checkpoints keep up) | at most {:.0} MiB; the database file ends at {:.0} MiB |\n",
        o.wal_max_mib, o.db_end_mib
    ));
    md.push_str(&format!(
        "| every event consumed | {} sent, {} committed; caught up {} after the last |\n\n",
        o.events_sent,
        o.events_committed,
        o.catch_up_s
            .map_or("not within 120 s".to_string(), |s| format!("{s:.1} s"))
    ));
    md.push_str(&format!(
        "Events: {:.0}/s offered, {:.0}/s sent. Server CPU: {}.\n\n",
        o.events_per_s_offered,
        o.events_per_s_achieved,
        o.server_cpu_cores
            .map_or("?".to_string(), |c| format!("{c:.2} cores"))
    ));
    md.push_str("## API\n\n| endpoint | requests | per s | p50 ms | p99 ms | max ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for e in &o.endpoints {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |\n",
            e.target, e.requests, e.achieved_per_s, e.p50_ms, e.p99_ms, e.max_ms, e.errors
        ));
        if let Some(error) = &e.first_error {
            md.push_str(&format!("\nFirst error ({}): `{error}`\n", e.target));
        }
    }
    md.push_str("\n## Memory and lag over time (every tenth of the run)\n\n| s | RSS MiB | SQLite MiB | fetch queue MiB | fetch queue messages | rest MiB | store MiB | WAL MiB | sent | committed | lag |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let step = (o.samples.len() / 10).max(1);
    for s in o.samples.iter().step_by(step) {
        md.push_str(&format!(
            "| {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
            s.at_s,
            s.rss_mib,
            s.sqlite_mib,
            s.fetch_queue_mib,
            s.fetch_queue_messages,
            s.rest_mib(),
            s.db_mib,
            s.wal_mib,
            s.sent,
            s.committed,
            s.sent.saturating_sub(s.committed)
        ));
    }
    std::fs::write(bench.out.join("bench-soak.md"), md)?;
    std::fs::write(
        bench.out.join("bench-soak.json"),
        serde_json::to_string_pretty(o)?,
    )?;
    println!("{}", bench.out.join("bench-soak.md").display());
    Ok(())
}

/// An environment value as the report may show it: secrets masked (by the
/// variable's name), passwords in URLs replaced. Reports get committed.
fn shown_value(name: &str, value: &str) -> String {
    let name = name.to_ascii_uppercase();
    if ["PASSWORD", "SECRET", "TOKEN", "KEY"]
        .iter()
        .any(|word| name.contains(word))
    {
        "***".to_string()
    } else {
        movierec_store::redact(value)
    }
}

#[cfg(test)]
mod tests {
    use super::{CacheGauges, KafkaConfig, load_producer_config, shown_value};

    #[test]
    fn cache_gauges_are_read_from_the_exposition_by_exact_name() {
        let exposition = "# TYPE movierec_sqlite_memory_bytes gauge\n\
            movierec_sqlite_memory_bytes 2097152\n\
            movierec_consumer_fetch_queue_bytes_total 7\n\
            movierec_consumer_fetch_queue_bytes 1048576\n\
            movierec_consumer_fetch_queue_messages 1200\n";
        let gauges = CacheGauges::parse(exposition);
        assert_eq!(gauges.sqlite_mib, 2.0);
        assert_eq!(gauges.fetch_queue_mib, 1.0);
        assert_eq!(gauges.fetch_queue_messages, 1200.0);
        assert!(CacheGauges::parse("movierec_up 1\n").sqlite_mib.is_nan());
    }

    #[test]
    fn the_load_producer_lingers_unless_the_configuration_says() {
        let mut kafka = KafkaConfig::default();
        assert_eq!(load_producer_config(&kafka).properties["linger.ms"], "100");
        kafka.properties.insert("linger.ms".into(), "5".into());
        assert_eq!(load_producer_config(&kafka).properties["linger.ms"], "5");
    }

    #[test]
    fn the_report_masks_secrets_and_url_passwords() {
        assert_eq!(
            shown_value("MOVIEREC_SERVING__DATABASE_URL", "mysql://app:pw@db:3306/x"),
            "mysql://app:***@db:3306/x"
        );
        assert_eq!(
            shown_value("MOVIEREC_KAFKA__PROPERTIES__SASL.PASSWORD", "hunter2"),
            "***"
        );
        assert_eq!(shown_value("MOVIEREC_AWS__SECRET_ACCESS_KEY", "abc"), "***");
        assert_eq!(
            shown_value("MOVIEREC_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19392"),
            "127.0.0.1:19392"
        );
    }
}
