//! The consumer group on the events topic.
//!
//! Messages are gathered into a batch (by count and time). A batch ends with,
//! in this order: its dead letters delivered to the dead-letter topic; its
//! valid events and its stream positions written to the store in one
//! transaction; then the positions committed to Kafka, best effort. Kafka's
//! committed offset therefore never passes what the store holds, and what the
//! store holds is skipped when read again: a crash at any point loses nothing
//! and counts nothing twice. Rebalances need no special handling for the same
//! reason: a batch that straddles one still commits each position once.
//!
//! One exception, for sinks whose progress is the Kafka commit (the S3
//! bronze layer): a consumer the group has dropped (silent past
//! `session.timeout.ms`: a paused process, a stalled host) has every commit
//! refused, and retrying cannot help, since librdkafka rejoins only while the
//! consumer polls. The run then rejoins as a new member from the last commit,
//! as after a crash ([`IngestError::LeftGroup`]).

use crate::dlq::Rejected;
use crate::producer::EventProducer;
use crate::status::IngestStatus;
use crate::{IngestError, Result, client_config, kafka_error};
use movierec_config::KafkaConfig;
use movierec_core::{InvalidEvent, RatingEvent};
use movierec_store::{ApplyOutcome, EventSink, SourcedEvent, StreamBatch};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Statistics};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a store write, dead-letter delivery or commit is retried before
/// the consumer stops with an error (nothing of the failed batch is
/// committed, so a restart resumes there): long enough to ride out a broker,
/// S3 or DynamoDB outage, short enough that a permanent fault is reported.
const RETRY_FOR: Duration = Duration::from_secs(600);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a consumer with no batch in hand looks up from the stream
/// (the idle check, the assignment watch).
const IDLE_TICK: Duration = Duration::from_millis(250);
/// How long `until_idle` runs wait for the group to assign partitions.
const JOIN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Stop once no message has arrived for this long (benchmarks, tests,
    /// one-off catch-up runs); `None` runs until shutdown.
    pub until_idle: Option<Duration>,
    /// How often the lag and the broker connection are checked.
    pub lag_interval: Duration,
    /// Set to true once the group has assigned this consumer partitions:
    /// whoever offers events at a pace (`movierec bench ingest`) waits for it.
    pub assigned: Option<tokio::sync::watch::Sender<bool>>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            until_idle: None,
            lag_interval: Duration::from_secs(5),
            assigned: None,
        }
    }
}

/// Totals of one `consume` run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumeSummary {
    pub consumed: u64,
    pub applied: u64,
    pub superseded: u64,
    pub replayed: u64,
    pub dead_lettered: u64,
    pub batches: u64,
    /// From the first message received to the last batch committed.
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Default)]
struct Batch {
    events: Vec<SourcedEvent>,
    /// Dead letters on their way: sent as soon as they are seen, awaited
    /// before the batch commits.
    dead_letters: Vec<tokio::task::JoinHandle<Result<&'static str>>>,
    next_offsets: BTreeMap<i32, i64>,
    started: Option<Instant>,
    /// From the first message to the batch being handed to the writer.
    gathered: Duration,
}

impl Batch {
    fn len(&self) -> usize {
        self.events.len() + self.dead_letters.len()
    }

    /// Adds a message; an invalid one is returned, to be dead-lettered.
    fn add(&mut self, message: &BorrowedMessage<'_>) -> Option<Rejected> {
        let partition = message.partition();
        let offset = message.offset();
        self.started.get_or_insert_with(Instant::now);
        let next = self.next_offsets.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
        let validated = match message.payload() {
            Some(payload) => RatingEvent::from_json(payload),
            None => Err(InvalidEvent::BadJson("the message has no payload".into())),
        };
        match validated {
            Ok(event) => {
                self.events.push(SourcedEvent {
                    partition,
                    offset,
                    event,
                });
                None
            }
            Err(error) => Some(Rejected {
                partition,
                offset,
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                reason: error.code(),
                error: error.to_string(),
            }),
        }
    }
}

/// Runs the consumer until `shutdown` completes (then the batch in hand is
/// written and committed) or, with `until_idle`, until the stream is quiet.
pub async fn run_consumer(
    config: &KafkaConfig,
    store: Arc<dyn EventSink>,
    status: Arc<IngestStatus>,
    options: ConsumerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<ConsumeSummary> {
    let dead_letters = EventProducer::new(config)?;
    status.set_running(true);
    tracing::info!(
        "consuming {} from {} as group {} (dead letters to {})",
        config.topic,
        config.bootstrap_servers,
        config.group_id,
        config.dlq_topic
    );
    tokio::pin!(shutdown);
    let mut progress = Progress::default();
    let mut rejoins = Rejoins::default();
    let result = loop {
        let consumer = match join_group(config) {
            Ok(consumer) => consumer,
            Err(error) => break Err(error),
        };
        let lag_task = tokio::spawn(watch_lag(
            consumer.clone(),
            store.clone(),
            status.clone(),
            config.clone(),
            options.lag_interval,
        ));
        let writer = Arc::new(Writer {
            config: config.clone(),
            consumer,
            store: store.clone(),
            dead_letters: dead_letters.clone(),
            status: status.clone(),
        });
        let result = consume_loop(writer, &options, shutdown.as_mut(), &mut progress).await;
        lag_task.abort();
        match result {
            // As after a crash: a new member resumes from the last commit,
            // and the batches in hand are read again (a replay the sinks
            // write idempotently). Writing them on would be wrong: the
            // group has reset this consumer's positions to the commit.
            Err(error @ IngestError::LeftGroup { .. }) => {
                if !rejoins.left(progress.totals.batches) {
                    // Dropped again and again with nothing committed (a
                    // static member id used twice, a group that never
                    // settles): say so rather than loop for ever.
                    break Err(IngestError::Invalid(format!(
                        "{error}; dropped {MAX_BARREN_REJOINS} times in a row without committing a batch: giving up"
                    )));
                }
                tracing::warn!("{error}: joining again, from the last committed offsets");
                status.failed(error.to_string());
            }
            other => break other,
        }
    };
    status.set_running(false);
    if let Err(error) = &result {
        status.failed(error.to_string());
    }
    result.map(|()| progress.summary())
}

/// How many times in a row the group may drop a consumer that commits
/// nothing in between before the run stops with an error.
const MAX_BARREN_REJOINS: u32 = 5;

/// Counts the group dropping this consumer with no batch committed since
/// the last time.
#[derive(Default)]
struct Rejoins {
    barren: u32,
    batches_then: u64,
}

impl Rejoins {
    /// The group dropped the consumer after `batches` batches in all:
    /// whether to join again.
    fn left(&mut self, batches: u64) -> bool {
        if batches > self.batches_then || self.barren == 0 {
            self.barren = 1;
        } else {
            self.barren += 1;
        }
        self.batches_then = batches;
        self.barren < MAX_BARREN_REJOINS
    }
}

type GroupConsumer = StreamConsumer<FetchQueueGauge>;

/// Publishes what librdkafka has fetched ahead of the consumer as
/// `movierec_consumer_fetch_queue_bytes` and `…_messages`. The prefetch is
/// the consumer's memory that follows the lag (up to `queued.min.messages`,
/// 20,000 here, per partition or `queued.max.messages.kbytes`), so a soak can tell it
/// from a leak.
struct FetchQueueGauge;

impl ClientContext for FetchQueueGauge {
    fn stats(&self, statistics: Statistics) {
        let (messages, bytes) = fetch_queue(&statistics);
        metrics::gauge!("movierec_consumer_fetch_queue_messages").set(messages as f64);
        metrics::gauge!("movierec_consumer_fetch_queue_bytes").set(bytes as f64);
    }
}

impl ConsumerContext for FetchQueueGauge {}

/// Messages and payload bytes fetched but not yet handed to the consumer,
/// over every partition of every topic.
fn fetch_queue(statistics: &Statistics) -> (u64, u64) {
    statistics
        .topics
        .values()
        .flat_map(|topic| topic.partitions.values())
        .fold((0, 0), |(messages, bytes), partition| {
            (
                messages + partition.fetchq_cnt.max(0) as u64,
                bytes + partition.fetchq_size,
            )
        })
}

/// A consumer in the group, subscribed to the events topic.
fn join_group(config: &KafkaConfig) -> Result<Arc<GroupConsumer>> {
    let consumer: GroupConsumer = client_config(
        config,
        &[
            ("group.id", &config.group_id),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            // Fail over in seconds rather than the 45 s default; a group
            // join also waits about half of this.
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
            // Feeds FetchQueueGauge; `0` in kafka.properties turns it off.
            ("statistics.interval.ms", "1000"),
            // librdkafka reads ahead up to 100,000 messages per partition by
            // default; when the consumer falls behind, that backlog (and the
            // allocator's high-water mark after it) is what made memory climb
            // in the soaks (docs/RELIABILITY.md, Load). With 20,000 the queue
            // passes its mark often, and each time librdkafka waits
            // fetch.queue.backoff.ms (1 s by default) before fetching that
            // partition again: at 40,000 events/s that starved the consumer
            // (lag 31 s after 3 minutes against under 5 s with 50 ms).
            ("queued.min.messages", "20000"),
            ("fetch.queue.backoff.ms", "50"),
        ],
    )
    .create_with_context(FetchQueueGauge)
    .map_err(kafka_error(config, "cannot create a consumer"))?;
    consumer.subscribe(&[&config.topic]).map_err(kafka_error(
        config,
        format!("cannot subscribe to {}", config.topic),
    ))?;
    Ok(Arc::new(consumer))
}

/// What a run has done so far, over every time it joined the group.
#[derive(Default)]
struct Progress {
    totals: ConsumeSummary,
    first_message: Option<Instant>,
    last_commit: Option<Instant>,
}

impl Progress {
    fn summary(self) -> ConsumeSummary {
        let mut summary = self.totals;
        if let (Some(first), Some(last)) = (self.first_message, self.last_commit) {
            summary.seconds = last.saturating_duration_since(first).as_secs_f64();
            if summary.seconds > 0.0 {
                summary.events_per_s = summary.consumed as f64 / summary.seconds;
            }
        }
        summary
    }
}

/// Writes batches: one at a time and in order, but beside the loop that
/// reads the next one (the two cores each get one of the two jobs).
struct Writer {
    config: KafkaConfig,
    consumer: Arc<GroupConsumer>,
    store: Arc<dyn EventSink>,
    dead_letters: EventProducer,
    status: Arc<IngestStatus>,
}

/// What one batch did.
#[derive(Debug, Default)]
struct Written {
    outcome: ApplyOutcome,
    dead_lettered: u64,
    finished: Option<Instant>,
}

type InFlight = Option<tokio::task::JoinHandle<Result<Written>>>;

/// Waits for the batch being written, and adds what it did to the summary.
async fn settle(in_flight: &mut InFlight, progress: &mut Progress) -> Result<()> {
    if let Some(task) = in_flight.take() {
        let written = task
            .await
            .map_err(|e| IngestError::Invalid(format!("the batch writer failed: {e}")))??;
        let summary = &mut progress.totals;
        summary.applied += written.outcome.accepted as u64;
        summary.superseded += written.outcome.superseded as u64;
        summary.replayed += written.outcome.replayed as u64;
        summary.dead_lettered += written.dead_lettered;
        summary.batches += 1;
        progress.last_commit = written.finished;
    }
    Ok(())
}

/// One membership of the group: until shutdown, idle, an error, or the
/// group dropping this consumer ([`IngestError::LeftGroup`]).
async fn consume_loop(
    writer: Arc<Writer>,
    options: &ConsumerOptions,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    progress: &mut Progress,
) -> Result<()> {
    let (config, consumer, status) = (&writer.config, &*writer.consumer, &*writer.status);
    let mut in_flight: InFlight = None;
    let max_events = config.max_batch_events;
    let max_wait = Duration::from_millis(config.max_batch_wait_ms);
    // Since this consumer joined: until then, a quiet stream is not idle.
    let mut first_message: Option<Instant> = None;
    // How long the loop has waited with nothing to read, added up tick by
    // tick rather than read off the clock: a process that was stopped (a
    // suspended laptop, SIGSTOP) has not watched a quiet stream meanwhile.
    let mut quiet = Duration::ZERO;
    let mut unassigned_since: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    let mut batch = Batch::default();
    let mut stopping = false;
    while !stopping {
        let deadline = batch.started.map(|t| t + max_wait);
        tokio::select! {
            biased;
            () = shutdown.as_mut() => {
                tracing::info!("stopping: writing the batch in hand");
                stopping = true;
            }
            received = consumer.recv() => match received {
                Ok(message) => {
                    first_message.get_or_insert_with(Instant::now);
                    progress.first_message.get_or_insert_with(Instant::now);
                    quiet = Duration::ZERO;
                    if let Some(rejected) = batch.add(&message) {
                        let task = tokio::spawn(writer.clone().dead_letter(rejected));
                        batch.dead_letters.push(task);
                    }
                    progress.totals.consumed += 1;
                    if batch.len() < max_events {
                        continue;
                    }
                }
                Err(error) => {
                    // librdkafka retries by itself; report (not on every
                    // retry: a broker that is down fails every few ms) and go on.
                    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("Kafka ({}): {error}; retrying", config.bootstrap_servers);
                        last_warning = Some(Instant::now());
                    }
                    status.failed(format!("Kafka: {error}"));
                    continue;
                }
            },
            () = sleep_until(deadline) => {}
            () = tokio::time::sleep(IDLE_TICK), if deadline.is_none() => {
                if let Some(assigned) = &options.assigned
                    && !*assigned.borrow()
                    && (first_message.is_some() || has_assignment(consumer))
                {
                    assigned.send_replace(true);
                }
                if options.until_idle.is_some() && !has_assignment(consumer) {
                    // Joining the group: quiet, but not idle yet. The same
                    // holds for a rejoin after the group dropped this member
                    // (a pause past the session timeout): a broker may take
                    // longer than the idle wait to hand the partitions back.
                    let unassigned = *unassigned_since.get_or_insert_with(Instant::now);
                    if unassigned.elapsed() < JOIN_LIMIT {
                        quiet = Duration::ZERO;
                        continue;
                    }
                    if first_message.is_none() {
                        return Err(IngestError::Invalid(format!(
                            "no partition of {} was assigned to group {} within {JOIN_LIMIT:?}: does the topic exist on {}?",
                            config.topic, config.group_id, config.bootstrap_servers
                        )));
                    }
                    // Left without partitions for good (another member took
                    // them all): from then on it is a quiet stream like any.
                } else {
                    unassigned_since = None;
                }
                quiet += IDLE_TICK;
                if options.until_idle.is_some_and(|idle| quiet >= idle) {
                    tracing::info!("no message for {:?}: done", options.until_idle.unwrap_or_default());
                    stopping = true;
                } else {
                    continue;
                }
            }
        }
        if batch.len() > 0 {
            settle(&mut in_flight, progress).await?;
            let mut done = std::mem::take(&mut batch);
            done.gathered = done.started.map(|t| t.elapsed()).unwrap_or_default();
            in_flight = Some(tokio::spawn(writer.clone().flush(done)));
        }
    }
    settle(&mut in_flight, progress).await
}

fn has_assignment(consumer: &GroupConsumer) -> bool {
    consumer.assignment().is_ok_and(|a| a.count() > 0)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Writer {
    /// Delivers one dead letter (with retries); its batch waits for it.
    async fn dead_letter(self: Arc<Self>, rejected: Rejected) -> Result<&'static str> {
        let config = &self.config;
        retry(&self.status, "deliver a dead letter", || {
            self.dead_letters.send_to(
                &config.dlq_topic,
                rejected.key.as_deref(),
                rejected.payload.as_deref(),
                Some(rejected.headers(&config.topic)),
            )
        })
        .await?;
        tracing::debug!(
            "dead-lettered {}/{}/{}: {}",
            config.topic,
            rejected.partition,
            rejected.offset,
            rejected.error
        );
        Ok(rejected.reason)
    }

    /// Dead letters, then data with positions, then the Kafka commit.
    async fn flush(self: Arc<Self>, batch: Batch) -> Result<Written> {
        let writing = Instant::now();
        let (config, status) = (&self.config, &*self.status);
        let mut dead_lettered = 0u64;
        for task in batch.dead_letters {
            let reason = task
                .await
                .map_err(|e| IngestError::Invalid(format!("a dead-letter send failed: {e}")))??;
            metrics::counter!("movierec_events_dead_lettered_total", "reason" => reason)
                .increment(1);
            dead_lettered += 1;
        }

        let next_offsets: Vec<(i32, i64)> =
            batch.next_offsets.iter().map(|(p, o)| (*p, *o)).collect();
        let outcome = retry(status, "write a batch to the store", || {
            self.store.apply_stream_batch(StreamBatch {
                topic: &config.topic,
                events: &batch.events,
                next_offsets: &next_offsets,
            })
        })
        .await?;

        let mut positions = TopicPartitionList::new();
        for (partition, next) in &next_offsets {
            let _ =
                positions.add_partition_offset(&config.topic, *partition, Offset::Offset(*next));
        }
        if self.store.stores_progress() {
            if let Err(error) = self.consumer.commit(&positions, CommitMode::Async) {
                // The store holds the truth; a lost Kafka commit only means a
                // replay that the store skips.
                tracing::debug!("Kafka commit failed (the store has the progress): {error}");
            }
        } else {
            // The commit is the progress: the next batch must start exactly
            // where this one ended, so that a replay rewrites the same objects.
            let consumer = self.consumer.clone();
            let committed = retry(status, "commit offsets to Kafka", || {
                let (consumer, positions) = (consumer.clone(), positions.clone());
                async move {
                    let result = tokio::task::spawn_blocking(move || {
                        consumer.commit(&positions, CommitMode::Sync)
                    })
                    .await
                    .map_err(|e| IngestError::Invalid(format!("commit task failed: {e}")))?;
                    match result {
                        // No retry mends this: only joining again does.
                        Err(error) if lost_membership(&error) => Ok(Err(error)),
                        other => other
                            .map(Ok)
                            .map_err(kafka_error(config, "cannot commit offsets")),
                    }
                }
            })
            .await?;
            committed.map_err(|source| IngestError::LeftGroup {
                bootstrap: config.bootstrap_servers.clone(),
                group: config.group_id.clone(),
                source: Box::new(source),
            })?;
        }

        tracing::debug!(
            "batch of {} events ({} dead letters) gathered in {:?}, written in {:?}",
            batch.events.len() as u64 + dead_lettered,
            dead_lettered,
            batch.gathered,
            writing.elapsed()
        );
        metrics::counter!("movierec_events_accepted_total").increment(outcome.accepted as u64);
        metrics::counter!("movierec_events_superseded_total").increment(outcome.superseded as u64);
        metrics::counter!("movierec_events_replayed_total").increment(outcome.replayed as u64);
        metrics::counter!("movierec_batches_total").increment(1);
        status.batch_done(outcome.accepted as u64, dead_lettered);
        Ok(Written {
            outcome,
            dead_lettered,
            finished: Some(Instant::now()),
        })
    }
}

/// Whether a commit failed because the group no longer has this consumer
/// (or this generation of it) as a member.
fn lost_membership(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::UnknownMemberId
                | Code::IllegalGeneration
                | Code::RebalanceInProgress
                | Code::FencedInstanceId
                | Code::StaleMemberEpoch
                | Code::AssignmentLost
        )
    )
}

/// Retries with backoff (50 ms doubling, at most 5 s apart) for up to
/// `RETRY_FOR`; then the last error is returned.
async fn retry<T, E, F, Fut>(status: &IngestStatus, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: Into<crate::IngestError> + std::fmt::Display,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    for n in 1.. {
        match attempt().await {
            Ok(value) => {
                if n > 1 {
                    tracing::info!("{what}: succeeded after {n} attempts");
                }
                return Ok(value);
            }
            Err(error) if started.elapsed() < RETRY_FOR => {
                tracing::warn!("cannot {what} (attempt {n}, retrying in {delay:?}): {error}");
                status.failed(format!("cannot {what}: {error}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(error) => return Err(error.into()),
        }
    }
    unreachable!("the loop returns")
}

/// Every `interval`: the high watermark of each assigned partition against
/// the progress in the store, and whether the broker answers at all.
async fn watch_lag(
    consumer: Arc<GroupConsumer>,
    store: Arc<dyn EventSink>,
    status: Arc<IngestStatus>,
    config: KafkaConfig,
    interval: Duration,
) {
    loop {
        let done: BTreeMap<i32, i64> = store
            .stream_offsets(&config.topic)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let topic = config.topic.clone();
        let probe = consumer.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let metadata = probe
                .fetch_metadata(Some(&topic), Duration::from_secs(3))
                .map_err(|e| e.to_string())?;
            let mut lag = BTreeMap::new();
            let partitions = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect::<Vec<_>>();
            for partition in partitions {
                if let Ok((_, high)) =
                    probe.fetch_watermarks(&topic, partition, Duration::from_secs(3))
                {
                    let position = done.get(&partition).copied().unwrap_or(0);
                    lag.insert(partition, (high - position).max(0));
                }
            }
            Ok::<_, String>(lag)
        })
        .await;
        match checked {
            Ok(Ok(lag)) => {
                // Lag first: whoever sees "connected" also sees a lag.
                status.set_lag(lag);
                status.broker_answered(Ok(()));
            }
            Ok(Err(error)) => status.broker_answered(Err(error)),
            Err(error) => status.broker_answered(Err(error.to_string())),
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_dropped_again_and_again_without_committing_gives_up() {
        let mut rejoins = Rejoins::default();
        for n in 1..MAX_BARREN_REJOINS {
            assert!(rejoins.left(0), "drop {n} of a barren streak rejoins");
        }
        assert!(!rejoins.left(0), "the last drop of the streak gives up");
    }

    #[test]
    fn a_committed_batch_between_drops_starts_the_count_again() {
        let mut rejoins = Rejoins::default();
        let mut batches = 0;
        for _ in 0..3 * MAX_BARREN_REJOINS {
            batches += 1;
            assert!(rejoins.left(batches));
        }
        for _ in 1..MAX_BARREN_REJOINS - 1 {
            assert!(rejoins.left(batches));
        }
        batches += 1;
        assert!(rejoins.left(batches), "progress resets the streak");
        assert!(rejoins.left(batches));
    }
}
