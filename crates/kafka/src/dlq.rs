//! The dead-letter topic (`kafka.dlq_topic`). A dead letter carries the
//! original key, bytes and headers, plus headers naming why it was rejected
//! and where it came from, so it can be inspected and replayed.

use crate::producer::EventProducer;
use crate::{Result, client_config, kafka_error};
use movierec_config::KafkaConfig;
use movierec_core::RatingEvent;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

pub const REASON: &str = "dlq.reason";
pub const ERROR: &str = "dlq.error";
pub const SOURCE_TOPIC: &str = "dlq.source.topic";
pub const SOURCE_PARTITION: &str = "dlq.source.partition";
pub const SOURCE_OFFSET: &str = "dlq.source.offset";
pub const FAILED_AT: &str = "dlq.failed_at";
/// Set on events re-sent by `movierec dlq replay`: the dead letter they came from.
pub const REPLAYED_FROM: &str = "dlq.replayed_from";

/// A rejected message as the consumer holds it until it is dead-lettered.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub reason: &'static str,
    pub error: String,
}

impl Rejected {
    /// Original headers first, then ours.
    pub fn headers(&self, source_topic: &str) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len() + 6);
        for (key, value) in &self.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for (key, value) in [
            (REASON, self.reason.to_string()),
            (ERROR, self.error.clone()),
            (SOURCE_TOPIC, source_topic.to_string()),
            (SOURCE_PARTITION, self.partition.to_string()),
            (SOURCE_OFFSET, self.offset.to_string()),
            (FAILED_AT, now),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        headers
    }
}

/// A message read back from the dead-letter topic.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub reason: String,
    pub error: String,
    pub source_topic: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub failed_at: String,
    /// The original bytes, lossily decoded for display.
    pub payload: String,
    #[serde(skip)]
    pub raw_payload: Option<Vec<u8>>,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
}

impl DeadLetter {
    /// Where the original event was: the identity of a dead letter (a crash
    /// between sending a dead letter and committing its batch sends it twice).
    pub fn source(&self) -> (String, Option<i32>, Option<i64>) {
        (
            self.source_topic.clone(),
            self.source_partition,
            self.source_offset,
        )
    }
}

/// Everything in the dead-letter topic up to its current end, duplicates of
/// the same source position dropped (see [`DeadLetter::source`]).
pub fn read_all(config: &KafkaConfig) -> Result<Vec<DeadLetter>> {
    let consumer: BaseConsumer = client_config(
        config,
        &[
            ("group.id", &format!("{}-dlq-reader", config.group_id)),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ],
    )
    .create()
    .map_err(kafka_error(config, "cannot create a consumer"))?;
    let topic = config.dlq_topic.as_str();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(kafka_error(
            config,
            format!("cannot read metadata of {topic}"),
        ))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(kafka_error(
                config,
                format!("cannot read the end of {topic}/{partition}"),
            ))?;
        if high > low {
            ends.push((partition, high));
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(kafka_error(config, "cannot assign"))?;
    }
    let mut letters = Vec::new();
    if partitions.is_empty() {
        return Ok(letters);
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_error(config, format!("cannot read {topic}")))?;
    let mut remaining: HashSet<i32> = ends.iter().map(|(p, _)| *p).collect();
    let mut idle = 0;
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            // The high watermark some brokers report (tansu among them) can
            // lag the real end by dozens of messages: once every partition
            // has reached it, keep reading until 1.5 s of silence; before
            // that, give up only after 10 s of silence.
            idle += 1;
            if idle >= if remaining.is_empty() { 3 } else { 20 } {
                break;
            }
            continue;
        };
        idle = 0;
        let message = message.map_err(kafka_error(config, format!("cannot read {topic}")))?;
        let end = ends
            .iter()
            .find(|(p, _)| *p == message.partition())
            .map_or(i64::MAX, |(_, end)| *end);
        if message.offset() + 1 >= end {
            remaining.remove(&message.partition());
        }
        let header = |name: &str| -> Option<String> {
            message.headers().and_then(|headers| {
                headers
                    .iter()
                    .filter(|h| h.key == name)
                    .last()
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        letters.push(DeadLetter {
            dlq_partition: message.partition(),
            dlq_offset: message.offset(),
            reason: header(REASON).unwrap_or_else(|| "unknown".into()),
            error: header(ERROR).unwrap_or_default(),
            source_topic: header(SOURCE_TOPIC).unwrap_or_default(),
            source_partition: header(SOURCE_PARTITION).and_then(|v| v.parse().ok()),
            source_offset: header(SOURCE_OFFSET).and_then(|v| v.parse().ok()),
            failed_at: header(FAILED_AT).unwrap_or_default(),
            payload: message
                .payload()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            raw_payload: message.payload().map(<[u8]>::to_vec),
            key: message.key().map(<[u8]>::to_vec),
        });
    }
    let mut seen = HashSet::new();
    letters.sort_by_key(|l| (l.dlq_partition, l.dlq_offset));
    letters.retain(|l| l.source_offset.is_none() || seen.insert(l.source()));
    Ok(letters)
}

/// What `dlq replay` did.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub resent: u64,
    /// Still invalid under today's rules: left in the dead-letter topic.
    pub still_invalid: u64,
    pub filtered_out: u64,
}

/// Re-sends dead letters to their source topic (or `to`). Only those that
/// pass validation now are sent unless `include_invalid`: re-sending an
/// invalid event only dead-letters it again.
pub async fn replay(
    config: &KafkaConfig,
    letters: &[DeadLetter],
    reason: Option<&str>,
    to: Option<&str>,
    include_invalid: bool,
    dry_run: bool,
) -> Result<ReplaySummary> {
    let producer = EventProducer::new(config)?;
    let mut summary = ReplaySummary::default();
    for letter in letters {
        if reason.is_some_and(|r| r != letter.reason) {
            summary.filtered_out += 1;
            continue;
        }
        let valid = letter
            .raw_payload
            .as_deref()
            .is_some_and(|p| RatingEvent::from_json(p).is_ok());
        if !valid && !include_invalid {
            summary.still_invalid += 1;
            continue;
        }
        let topic = to
            .map(str::to_string)
            .or_else(|| Some(letter.source_topic.clone()).filter(|t| !t.is_empty()))
            .unwrap_or_else(|| config.topic.clone());
        if !dry_run {
            let origin = format!(
                "{}/{}/{}",
                config.dlq_topic, letter.dlq_partition, letter.dlq_offset
            );
            let headers = OwnedHeaders::new().insert(Header {
                key: REPLAYED_FROM,
                value: Some(origin.as_bytes()),
            });
            producer
                .send_to(
                    &topic,
                    letter.key.as_deref(),
                    letter.raw_payload.as_deref(),
                    Some(headers),
                )
                .await?;
        }
        summary.resent += 1;
    }
    Ok(summary)
}
