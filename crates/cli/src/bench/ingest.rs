//! `movierec bench ingest`: the consumer's side of the seed's chapter 4.
//! Each run gets topics and a consumer group of its own on the configured
//! Kafka and a fresh SQLite store; `movierec consume --until-idle` runs as a
//! child process (wall time, CPU and peak memory from wait4) while this
//! process produces synthetic events (with a share of malformed ones, which
//! must reach the dead-letter topic) and samples the group's lag from Kafka
//! every 100 ms: the end of the topic against the offsets the consumer
//! committed.
//!
//! Two kinds of run: `max` produces the whole stream first and measures how
//! fast the consumer drains the backlog; a rate (events/s) produces at that
//! pace while the consumer runs, and measures how far behind it falls and how
//! long it takes to catch up after the last event.

use super::{Rate, environment, measure, median, quantile, standalone_chart};
use anyhow::{Context, Result, bail, ensure};
use movierec_config::KafkaConfig;
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use movierec_kafka::admin::{LagProbe, LagSample, create_topic, delete_topics};
use movierec_kafka::producer::BulkProducer;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What `movierec bench ingest` was asked.
#[derive(Debug, Clone)]
pub struct IngestBench {
    pub events: u64,
    pub rates: Vec<Rate>,
    pub partitions: i32,
    pub repeats: usize,
    pub invalid_fraction: f64,
    pub users: u64,
    pub movies: u64,
    pub seed: u64,
    /// The consumer stops after this long without a message.
    pub idle_s: f64,
    pub out: PathBuf,
    /// The caller's configuration file, handed to the consumer as it is.
    pub config_file: Option<PathBuf>,
    pub kafka: KafkaConfig,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    rate: String,
    requested_per_s: Option<f64>,
    repeat: usize,
    events: u64,
    malformed: u64,
    /// Events handed to the producer per second, until the last was delivered.
    produced_per_s: f64,
    /// The consumer's own figure: first message to last batch committed.
    consumed_per_s: f64,
    consumed: u64,
    dead_lettered: u64,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
    lag_samples: usize,
    /// From the last event delivered to the group's commit covering it.
    catch_up_s: Option<f64>,
    consumer_wall_s: f64,
    consumer_cpu_s: f64,
    consumer_peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    rate: String,
    requested_per_s: Option<f64>,
    runs: usize,
    produced_per_s: f64,
    consumed_per_s_median: f64,
    consumed_per_s_min: f64,
    consumed_per_s_max: f64,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
    catch_up_s: Option<f64>,
    peak_rss_mib: f64,
    cpu_per_event_us: f64,
    /// Every run consumed each event once and dead-lettered every malformed one.
    complete: bool,
}

/// One run's names: topics and group of its own, so runs never share state.
struct Names {
    topic: String,
    dlq: String,
    group: String,
}

pub async fn run(bench: &IngestBench) -> Result<()> {
    ensure!(bench.events >= 1, "--events: expected at least 1");
    ensure!(bench.repeats >= 1, "--repeats: expected at least 1");
    ensure!(bench.partitions >= 1, "--partitions: expected at least 1");
    ensure!(
        !bench.rates.is_empty(),
        "--rates: expected at least one rate"
    );
    ensure!(
        (0.0..=1.0).contains(&bench.invalid_fraction),
        "--invalid-fraction: expected a share from 0 to 1, got {}",
        bench.invalid_fraction
    );
    let bin = std::env::current_exe().context("cannot find the movierec binary")?;
    let work = bench.out.join("bench-ingest-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");

    let mut runs = Vec::new();
    let progress = indicatif::ProgressBar::new((bench.rates.len() * bench.repeats) as u64);
    for repeat in 0..bench.repeats {
        for (i, &rate) in bench.rates.iter().enumerate() {
            let id = format!("movierec-bench-{stamp}-{}-{repeat}-{i}", std::process::id());
            let names = Names {
                dlq: format!("{id}-dlq"),
                group: id.clone(),
                topic: id,
            };
            create_topic(&bench.kafka, &names.topic, bench.partitions)
                .await
                .with_context(|| {
                    format!(
                        "bench ingest needs a Kafka broker at {} (kafka.bootstrap_servers) that lets it create topics",
                        bench.kafka.bootstrap_servers
                    )
                })?;
            create_topic(&bench.kafka, &names.dlq, 1).await?;
            let dir = work.join(format!("run-{repeat}-{i}"));
            std::fs::create_dir_all(&dir)?;
            let measured = {
                let bench = bench.clone();
                let bin = bin.clone();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    let result = one_run(&bench, &bin, &dir, &names, rate, repeat);
                    (result, names)
                })
                .await?
            };
            let (result, names) = measured;
            let left = delete_topics(&bench.kafka, &[&names.topic, &names.dlq]).await;
            if !left.is_empty() {
                tracing::warn!("could not delete the bench topics {left:?}");
            }
            runs.push(result?);
            if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
                std::fs::remove_dir_all(&dir).ok();
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let summaries = summarise(bench, &runs);
    write_report(bench, &summaries, &runs)?;
    if std::env::var_os("MOVIEREC_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&work).ok();
    }
    Ok(())
}

/// Produces `count` synthetic events at `rate` (or flat out); returns
/// (malformed events sent, seconds until the last was delivered).
fn produce(
    kafka: &KafkaConfig,
    bench: &IngestBench,
    topic: &str,
    rate: Rate,
    seed: u64,
) -> Result<(u64, f64)> {
    let producer = BulkProducer::new(kafka)?;
    let params = EventStreamParams {
        count: bench.events,
        users: bench.users,
        movies: bench.movies,
        invalid_fraction: bench.invalid_fraction,
        seed,
        ..Default::default()
    };
    let started = Instant::now();
    let mut malformed = 0;
    for (sent, event) in synthetic_events(params).enumerate() {
        if let Rate::PerSecond(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        producer.send(topic, event.key.as_bytes(), &event.payload)?;
        malformed += u64::from(event.invalid_reason.is_some());
    }
    producer.flush(Duration::from_secs(120))?;
    Ok((malformed, started.elapsed().as_secs_f64()))
}

fn one_run(
    bench: &IngestBench,
    bin: &std::path::Path,
    dir: &std::path::Path,
    names: &Names,
    rate: Rate,
    repeat: usize,
) -> Result<Run> {
    let mut kafka = bench.kafka.clone();
    kafka.topic = names.topic.clone();
    kafka.dlq_topic = names.dlq.clone();
    kafka.group_id = names.group.clone();
    // The same events in every repeat: runs differ only by the machine's noise.
    let seed = bench.seed;

    let mut consumer = Command::new(bin);
    if let Some(file) = &bench.config_file {
        consumer.arg("--config").arg(file);
    }
    let idle = match rate {
        // A slow stream must not look idle between two events.
        Rate::PerSecond(r) => bench.idle_s.max(3.0 / r),
        Rate::Max => bench.idle_s,
    };
    consumer
        .args(["consume", "--until-idle"])
        .arg(format!("{idle}"))
        .arg("--ready-file")
        .arg(dir.join("ready"))
        .env("MOVIEREC_STORAGE_MODE", "sqlite")
        .env("MOVIEREC_SQLITE__PATH", dir.join("store.db"))
        .env("MOVIEREC_KAFKA__ENABLED", "true")
        .env("MOVIEREC_KAFKA__TOPIC", &names.topic)
        .env("MOVIEREC_KAFKA__DLQ_TOPIC", &names.dlq)
        .env("MOVIEREC_KAFKA__GROUP_ID", &names.group)
        .env("MOVIEREC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("consume.out"))?)
        .stderr(std::fs::File::create(dir.join("consume.log"))?);

    let (malformed, produce_s, consumer_result, samples) = std::thread::scope(|scope| {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            let kafka = kafka.clone();
            scope.spawn(move || sample_lag(&kafka, names, bench.partitions, &stop))
        };
        let outcome = (|| -> Result<_> {
            match rate {
                Rate::Max => {
                    let (malformed, seconds) = produce(&kafka, bench, &names.topic, rate, seed)?;
                    let delivered = Instant::now();
                    let measured = measure(consumer);
                    Ok((malformed, seconds, delivered, measured))
                }
                Rate::PerSecond(_) => {
                    let child = std::thread::scope(|inner| {
                        let handle = inner.spawn(|| measure(consumer));
                        // Offered events must meet a running consumer, not
                        // pile up while it joins its group.
                        wait_until_ready(&dir.join("ready"));
                        let produced = produce(&kafka, bench, &names.topic, rate, seed);
                        let delivered = Instant::now();
                        (produced, delivered, handle.join())
                    });
                    let (produced, delivered, measured) = child;
                    let measured =
                        measured.map_err(|_| anyhow::anyhow!("the consumer watcher panicked"))?;
                    let (malformed, seconds) = produced?;
                    Ok((malformed, seconds, delivered, measured))
                }
            }
        })();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        outcome.map(|(m, s, delivered, measured)| (m, s, (delivered, measured), samples))
    })?;
    let (delivered, measured) = consumer_result;
    let (wall, cpu, rss, status) = measured?;
    let log = || std::fs::read_to_string(dir.join("consume.log")).unwrap_or_default();
    if !status.success() {
        bail!(
            "the consumer failed ({status}) on {}:\n{}",
            names.topic,
            log()
        );
    }
    let stdout = std::fs::read_to_string(dir.join("consume.out"))?;
    let summary: ConsumerSummary = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .with_context(|| format!("the consumer printed no summary:\n{stdout}\n{}", log()))?;

    let total = bench.events as i64;
    let lags: Vec<f64> = {
        let mut lags: Vec<f64> = samples
            .iter()
            .filter(|(_, s)| s.produced > 0)
            .map(|(_, s)| s.lag() as f64)
            .collect();
        lags.sort_by(f64::total_cmp);
        lags
    };
    let catch_up_s = samples
        .iter()
        .find(|(at, s)| *at >= delivered && s.committed >= total)
        .map(|(at, _)| at.duration_since(delivered).as_secs_f64())
        .or_else(|| {
            // Caught up before the producer's flush returned.
            samples
                .iter()
                .any(|(_, s)| s.committed >= total)
                .then_some(0.0)
        });
    Ok(Run {
        rate: rate.to_string(),
        requested_per_s: match rate {
            Rate::Max => None,
            Rate::PerSecond(r) => Some(r),
        },
        repeat,
        events: bench.events,
        malformed,
        produced_per_s: bench.events as f64 / produce_s.max(1e-9),
        consumed_per_s: summary.consumed as f64 / summary.seconds.max(1e-9),
        consumed: summary.consumed,
        dead_lettered: summary.dead_lettered,
        lag_p50: quantile(&lags, 0.5),
        lag_p99: quantile(&lags, 0.99),
        lag_max: lags.last().copied().unwrap_or(f64::NAN),
        lag_samples: lags.len(),
        catch_up_s,
        consumer_wall_s: wall,
        consumer_cpu_s: cpu,
        consumer_peak_rss_mib: rss,
    })
}

/// The fields of the consumer's JSON summary line that the report uses.
#[derive(serde::Deserialize)]
struct ConsumerSummary {
    consumed: u64,
    dead_lettered: u64,
    seconds: f64,
}

/// Waits (up to a minute, the consumer's own limit) until the consumer says
/// its group assigned it partitions, or it exits.
fn wait_until_ready(ready: &std::path::Path) {
    let started = Instant::now();
    while !ready.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples the group's lag every 100 ms until `stop`; failed samples (the
/// group not formed yet) are skipped.
fn sample_lag(
    kafka: &KafkaConfig,
    names: &Names,
    partitions: i32,
    stop: &AtomicBool,
) -> Vec<(Instant, LagSample)> {
    let Ok(probe) = LagProbe::new(kafka, &names.group, &names.topic, partitions) else {
        return Vec::new();
    };
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        if let Ok(sample) = probe.sample(Duration::from_secs(2)) {
            samples.push((at, sample));
        }
        if let Some(rest) = Duration::from_millis(100).checked_sub(at.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    samples
}

fn summarise(bench: &IngestBench, runs: &[Run]) -> Vec<Summary> {
    bench
        .rates
        .iter()
        .map(|rate| {
            let name = rate.to_string();
            let mine: Vec<&Run> = runs.iter().filter(|r| r.rate == name).collect();
            let pick = |f: fn(&Run) -> f64| mine.iter().map(|r| f(r)).collect::<Vec<_>>();
            let consumed = pick(|r| r.consumed_per_s);
            let catch_ups: Vec<f64> = mine.iter().filter_map(|r| r.catch_up_s).collect();
            Summary {
                rate: name,
                requested_per_s: match rate {
                    Rate::Max => None,
                    Rate::PerSecond(r) => Some(*r),
                },
                runs: mine.len(),
                produced_per_s: median(&pick(|r| r.produced_per_s)),
                consumed_per_s_median: median(&consumed),
                consumed_per_s_min: consumed.iter().copied().fold(f64::INFINITY, f64::min),
                consumed_per_s_max: consumed.iter().copied().fold(0.0, f64::max),
                lag_p50: median(&pick(|r| r.lag_p50)),
                lag_p99: median(&pick(|r| r.lag_p99)),
                lag_max: pick(|r| r.lag_max).into_iter().fold(0.0, f64::max),
                catch_up_s: (catch_ups.len() == mine.len()).then(|| median(&catch_ups)),
                peak_rss_mib: pick(|r| r.consumer_peak_rss_mib)
                    .into_iter()
                    .fold(0.0, f64::max),
                cpu_per_event_us: median(&pick(|r| r.consumer_cpu_s * 1e6 / r.events as f64)),
                complete: mine
                    .iter()
                    .all(|r| r.consumed == r.events && r.dead_lettered == r.malformed),
            }
        })
        .collect()
}

fn write_report(bench: &IngestBench, summaries: &[Summary], runs: &[Run]) -> Result<()> {
    let environment = environment();
    let mut md = format!(
        "# Ingestion benchmark\n\n{} synthetic events per run ({} malformed on purpose, which go to the dead-letter topic), \
         {} partition(s), {} run(s) per rate; Kafka at {}; `movierec consume` into a fresh SQLite store, \
         on topics and a consumer group of its own per run.\n\nEnvironment: {environment}\n\n\
         ## Throughput and lag\n\n\
         | Offered rate | Produced events/s | Consumed events/s (median, min–max) | Lag p50 / p99 / max (events) | Catch-up after the last event | Peak memory | CPU per event | Every event once |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        bench.events,
        runs.first().map_or(0, |r| r.malformed),
        bench.partitions,
        bench.repeats,
        bench.kafka.bootstrap_servers,
    );
    let figure = |v: f64| {
        if v.is_finite() {
            format!("{v:.0}")
        } else {
            "–".into()
        }
    };
    for s in summaries {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} ({:.0}–{:.0}) | {} | {} | {:.0} MiB | {:.1} µs | {} |\n",
            s.rate,
            s.produced_per_s,
            s.consumed_per_s_median,
            s.consumed_per_s_min,
            s.consumed_per_s_max,
            if s.requested_per_s.is_none() {
                format!("the whole stream ({}), drained", bench.events)
            } else {
                format!(
                    "{} / {} / {}{}",
                    figure(s.lag_p50),
                    figure(s.lag_p99),
                    figure(s.lag_max),
                    s.requested_per_s
                        .filter(|_| s.lag_p99.is_finite())
                        .map_or_else(String::new, |r| format!(
                            " (p99 ≈ {:.2} s behind)",
                            s.lag_p99 / r
                        ))
                )
            },
            s.catch_up_s
                .map_or_else(|| "not seen".into(), |c| format!("{c:.2} s")),
            s.peak_rss_mib,
            s.cpu_per_event_us,
            if s.complete { "yes" } else { "NO" },
        ));
    }
    md.push_str(
        "\nConsumed events/s: the consumer's own figure, from its first message to its last batch committed. \
         Lag: the end of the topic minus the offsets the group committed, sampled every 100 ms while the run lasted. \
         `max` produces the whole stream before the consumer starts, so its lag is the stream itself. Catch-up: from the \
         producer's last delivery to the first sample whose commits cover every event (for `max`, that includes starting \
         the consumer and joining its group). At a fixed rate the consumer joins its group first (`consume --ready-file`), \
         then events are offered. CPU per event: the consumer process's CPU time over the events. \
         Every event once: the consumer consumed as many events as were produced and dead-lettered every malformed one.\n\n\
         ![consumed events per second](bench-ingest.svg)\n",
    );
    std::fs::create_dir_all(&bench.out)?;
    std::fs::write(bench.out.join("bench-ingest.md"), &md)?;
    let bars: Vec<(String, u64)> = summaries
        .iter()
        .map(|s| (s.rate.clone(), s.consumed_per_s_median.round() as u64))
        .collect();
    std::fs::write(
        bench.out.join("bench-ingest.svg"),
        standalone_chart(&bars, "median consumed events per second, by offered rate"),
    )?;
    std::fs::write(
        bench.out.join("bench-ingest.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "environment": environment,
            "events": bench.events,
            "partitions": bench.partitions,
            "summaries": summaries,
            "runs": runs,
        }))?,
    )?;
    println!("{md}");
    println!(
        "report: {} (and bench-ingest.svg, bench-ingest.json)",
        bench.out.join("bench-ingest.md").display()
    );
    Ok(())
}
