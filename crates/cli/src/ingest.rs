//! `produce`, `consume` and `dlq`: the streaming side, wired from `kafka.*`.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use movierec_config::{Config, StorageMode};
use movierec_datasets::events::{EventStreamParams, synthetic_events};
use movierec_datasets::movielens;
use movierec_kafka::dlq;
use movierec_kafka::producer::BulkProducer;
use movierec_kafka::{ConsumerOptions, IngestStatus};
use movierec_store::EventSink;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ProduceArgs<'a> {
    pub count: Option<u64>,
    pub replay: Option<&'a Path>,
    pub rate: Option<f64>,
    pub invalid_fraction: f64,
    pub seed: u64,
    pub users: u64,
    pub movies: u64,
    pub topic: Option<&'a str>,
}

fn count_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message("events");
    bar
}

/// Holds a steady rate: sleeps whenever the sender is ahead of schedule.
struct Pacer {
    rate: Option<f64>,
    started: Instant,
}

impl Pacer {
    fn wait(&self, sent: u64) {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}

/// `movierec produce`: synthetic events or a MovieLens replay, keyed by user.
pub fn produce(config: &Config, args: &ProduceArgs<'_>) -> Result<()> {
    if !(0.0..=1.0).contains(&args.invalid_fraction) {
        bail!(
            "--invalid-fraction must be between 0 and 1, got {}",
            args.invalid_fraction
        );
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be a positive number of events per second, got {rate}");
    }
    let topic = args.topic.unwrap_or(&config.kafka.topic).to_string();
    let producer = BulkProducer::new(&config.kafka)?;
    let started = Instant::now();
    let pacer = Pacer {
        rate: args.rate,
        started,
    };
    let mut sent = 0u64;
    let mut invalid = 0u64;
    match (args.count, args.replay) {
        (Some(count), None) => {
            let bar = count_bar(count);
            let params = EventStreamParams {
                count,
                users: args.users,
                movies: args.movies,
                invalid_fraction: args.invalid_fraction,
                seed: args.seed,
                ..Default::default()
            };
            for event in synthetic_events(params) {
                pacer.wait(sent);
                producer.send(&topic, event.key.as_bytes(), &event.payload)?;
                sent += 1;
                invalid += u64::from(event.invalid_reason.is_some());
                if sent.is_multiple_of(4096) {
                    bar.set_position(sent);
                }
            }
            bar.finish_and_clear();
        }
        (None, Some(path)) => {
            let dir = if path.is_file() {
                path.parent().unwrap_or(Path::new("."))
            } else {
                path
            };
            let layout = movielens::detect_layout(dir)?;
            let mut rows = Vec::new();
            let report = movielens::read_ratings(dir, layout, false, |_| {}, |row| rows.push(row))?;
            if report.malformed > 0 {
                tracing::warn!(
                    "skipped {} malformed lines in {}",
                    report.malformed,
                    dir.display()
                );
            }
            // Replays go in event-time order, as the events happened.
            rows.sort_by_key(|r| r.timestamp);
            let bar = count_bar(rows.len() as u64);
            let mut rng_state = args.seed | 1;
            for row in &rows {
                pacer.wait(sent);
                let payload = format!(
                    r#"{{"user_id": {}, "movie_id": {}, "rating": {}, "timestamp": {}}}"#,
                    row.user_id,
                    row.movie_id,
                    row.rating.value(),
                    row.timestamp.millis().div_euclid(1000)
                );
                let mut payload = payload.into_bytes();
                if args.invalid_fraction > 0.0 {
                    // xorshift: cheap and deterministic for a seed.
                    rng_state ^= rng_state << 13;
                    rng_state ^= rng_state >> 7;
                    rng_state ^= rng_state << 17;
                    if (rng_state % 1_000_000) as f64 / 1e6 < args.invalid_fraction {
                        payload.truncate(payload.len() / 2); // broken JSON
                        invalid += 1;
                    }
                }
                producer.send(&topic, row.user_id.to_string().as_bytes(), &payload)?;
                sent += 1;
                if sent.is_multiple_of(4096) {
                    bar.set_position(sent);
                }
            }
            bar.finish_and_clear();
        }
        _ => bail!(
            "give either --count N (synthetic events) or --replay DIR|FILE (MovieLens ratings)"
        ),
    }
    producer.flush(Duration::from_secs(120))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} events ({invalid} malformed on purpose) to {topic} at {} in {seconds:.2}s: {:.0} events/s, {} delivered",
        config.kafka.bootstrap_servers,
        sent as f64 / seconds.max(1e-9),
        producer.delivered()
    );
    Ok(())
}

/// `movierec consume`: until Ctrl-C/SIGTERM, or until the stream is quiet.
pub async fn consume(
    config: &Config,
    until_idle: Option<f64>,
    ready_file: Option<&Path>,
) -> Result<()> {
    let mut options = ConsumerOptions {
        until_idle: until_idle.map(Duration::from_secs_f64),
        ..Default::default()
    };
    if let Some(path) = ready_file {
        let (assigned, mut watch) = tokio::sync::watch::channel(false);
        options.assigned = Some(assigned);
        let path = path.to_path_buf();
        tokio::spawn(async move {
            if watch.wait_for(|ready| *ready).await.is_ok()
                && let Err(error) = std::fs::write(&path, b"assigned\n")
            {
                tracing::warn!("cannot write the ready file {}: {error}", path.display());
            }
        });
    }
    let mut sqlite = None;
    let mut aws_sink = None;
    let sink: Arc<dyn EventSink> = match config.storage_mode {
        StorageMode::Sqlite => {
            let store = crate::open_rating_store(config).await?;
            sqlite = Some(store.clone());
            Arc::new(store)
        }
        StorageMode::Aws => {
            // Fails early, with the message for missing credentials.
            let aws = movierec_aws::Aws::connect(&config.aws).await?;
            let sink = Arc::new(crate::serve::aws_sink(config, &aws)?);
            aws_sink = Some(sink.clone());
            sink
        }
    };
    let summary = movierec_kafka::run_consumer(
        &config.kafka,
        sink,
        Arc::new(IngestStatus::default()),
        options,
        crate::serve::shutdown_signal(),
    )
    .await?;
    if let Some(store) = sqlite {
        store.close().await;
    }
    eprintln!(
        "consumed {} events in {:.2}s ({:.0} events/s): {} applied, {} older than stored, {} already applied, {} dead-lettered, {} batches",
        summary.consumed,
        summary.seconds,
        summary.events_per_s,
        summary.applied,
        summary.superseded,
        summary.replayed,
        summary.dead_lettered,
        summary.batches
    );
    if let Some(sink) = aws_sink {
        eprintln!("DynamoDB requests: {}", sink.features().requests());
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

pub fn dlq_list(config: &Config, limit: Option<usize>, json: bool) -> Result<()> {
    let letters = dlq::read_all(&config.kafka).with_context(|| {
        format!(
            "cannot read the dead-letter topic {}",
            config.kafka.dlq_topic
        )
    })?;
    let shown = limit.unwrap_or(usize::MAX).min(letters.len());
    if json {
        for letter in &letters[..shown] {
            println!("{}", serde_json::to_string(letter)?);
        }
        return Ok(());
    }
    println!(
        "{} dead letters in {} (one per source position)",
        letters.len(),
        config.kafka.dlq_topic
    );
    for letter in &letters[..shown] {
        let mut payload: String = letter.payload.chars().take(80).collect();
        if letter.payload.chars().count() > 80 {
            payload.push('…');
        }
        println!(
            "{}/{}/{}  {:<14} {}\n    {}",
            letter.source_topic,
            letter
                .source_partition
                .map_or("?".into(), |p| p.to_string()),
            letter.source_offset.map_or("?".into(), |o| o.to_string()),
            letter.reason,
            letter.error,
            payload
        );
    }
    if shown < letters.len() {
        println!("… {} more (--limit)", letters.len() - shown);
    }
    Ok(())
}

pub async fn dlq_replay(
    config: &Config,
    reason: Option<&str>,
    to: Option<&str>,
    include_invalid: bool,
    dry_run: bool,
) -> Result<()> {
    let letters = dlq::read_all(&config.kafka).with_context(|| {
        format!(
            "cannot read the dead-letter topic {}",
            config.kafka.dlq_topic
        )
    })?;
    let summary = dlq::replay(
        &config.kafka,
        &letters,
        reason,
        to,
        include_invalid,
        dry_run,
    )
    .await?;
    println!(
        "{} {} events; {} still invalid (left in {}; --include-invalid sends them anyway); {} filtered out by --reason",
        if dry_run { "would re-send" } else { "re-sent" },
        summary.resent,
        summary.still_invalid,
        config.kafka.dlq_topic,
        summary.filtered_out
    );
    Ok(())
}

/// `data bronze`: the synthetic stream as the consumer would have written it:
/// per Kafka partition (user id mod `partitions`), a batch of
/// `events_per_object` events becomes one object per date it spans, named by
/// the partition's offset of its first event. Returns objects and bytes written.
pub async fn write_synthetic_bronze(
    lake: &movierec_lake::Lake,
    prefix: &str,
    params: EventStreamParams,
    partitions: u64,
    events_per_object: usize,
) -> Result<(u64, u64)> {
    struct Partition {
        next_offset: i64,
        batch_first: i64,
        pending: usize,
        by_date: std::collections::BTreeMap<String, Vec<u8>>,
    }
    let bar = count_bar(params.count);
    let mut parts: Vec<Partition> = (0..partitions)
        .map(|_| Partition {
            next_offset: 0,
            batch_first: 0,
            pending: 0,
            by_date: Default::default(),
        })
        .collect();
    let (mut objects, mut bytes) = (0u64, 0u64);
    let mut flush = async |p: usize, part: &mut Partition| -> Result<()> {
        for (date, lines) in std::mem::take(&mut part.by_date) {
            let key = movierec_aws::bronze_key(prefix, &date, p as i32, part.batch_first);
            bytes += lines.len() as u64;
            objects += 1;
            lake.put(&key, lines.into())
                .await
                .with_context(|| format!("cannot write {}/{key}", lake.url()))?;
        }
        part.pending = 0;
        part.batch_first = part.next_offset;
        Ok(())
    };
    for (i, generated) in synthetic_events(params).enumerate() {
        let event = movierec_core::RatingEvent::from_json(&generated.payload)
            .context("the generator made an invalid event")?;
        let p = (event.user_id % partitions) as usize;
        let part = &mut parts[p];
        let lines = part.by_date.entry(event.timestamp.date()).or_default();
        lines.extend_from_slice(event.to_json().as_bytes());
        lines.push(b'\n');
        part.next_offset += 1;
        part.pending += 1;
        if part.pending >= events_per_object {
            flush(p, part).await?;
        }
        if i % 65_536 == 0 {
            bar.set_position(i as u64);
        }
    }
    for (p, part) in parts.iter_mut().enumerate() {
        if part.pending > 0 {
            flush(p, part).await?;
        }
    }
    bar.finish_and_clear();
    Ok((objects, bytes))
}
