//! Sending events: one at a time with a delivery report (the API), or in bulk
//! at full speed with counted deliveries (`movierec produce`).

use crate::{IngestError, Result, client_config, kafka_error};
use movierec_config::KafkaConfig;
use rdkafka::ClientContext;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a send may wait for the broker before it is reported as failed.
const DELIVERY_TIMEOUT_MS: &str = "30000";

/// Sends events one by one and waits for each delivery (the API's path).
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
    config: KafkaConfig,
}

impl EventProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self> {
        let producer = client_config(
            config,
            &[
                ("acks", "all"),
                // A request waits for this: fail in seconds, not minutes.
                ("message.timeout.ms", "10000"),
                ("linger.ms", "2"),
            ],
        )
        .create()
        .map_err(kafka_error(config, "cannot create a producer"))?;
        Ok(Self {
            producer,
            config: config.clone(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// Sends to `topic` and returns where the event landed: (partition, offset).
    pub async fn send_to(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(i32, i64)> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        let delivery = self
            .producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(error, _)| error)
            .map_err(kafka_error(
                &self.config,
                format!("cannot deliver to topic {topic}"),
            ))?;
        Ok((delivery.partition, delivery.offset))
    }

    /// Sends a rating event to the events topic, keyed by user id.
    pub async fn send_event(&self, user_id: u64, payload: &[u8]) -> Result<(i32, i64)> {
        let key = user_id.to_string();
        self.send_to(
            &self.config.topic,
            Some(key.as_bytes()),
            Some(payload),
            None,
        )
        .await
    }

    /// Asks the cluster for the topic's metadata: is the broker reachable?
    pub async fn check(&self) -> Result<()> {
        let producer = self.producer.clone();
        let topic = self.config.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(3))
                .map(|_| ())
        })
        .await
        .map_err(|e| IngestError::Invalid(format!("metadata check panicked: {e}")))?
        .map_err(kafka_error(&self.config, "broker did not answer"))
    }
}

/// Counts deliveries reported by librdkafka's background thread.
#[derive(Default)]
pub struct DeliveryCounter {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Bulk sending at full speed: librdkafka batches, a background thread polls
/// for deliveries, a full queue makes `send` wait rather than fail.
pub struct BulkProducer {
    producer: ThreadedProducer<DeliveryCounter>,
    config: KafkaConfig,
}

impl BulkProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self> {
        let producer = client_config(
            config,
            &[
                ("acks", "all"),
                ("message.timeout.ms", DELIVERY_TIMEOUT_MS),
                ("linger.ms", "20"),
                ("batch.num.messages", "10000"),
                ("batch.size", "1000000"),
                ("queue.buffering.max.messages", "500000"),
            ],
        )
        .create_with_context(DeliveryCounter::default())
        .map_err(kafka_error(config, "cannot create a producer"))?;
        Ok(Self {
            producer,
            config: config.clone(),
        })
    }

    pub fn send(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((error, returned))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, _)) => {
                    return Err(kafka_error(
                        &self.config,
                        format!("cannot send to topic {topic}"),
                    )(error));
                }
            }
        }
    }

    pub fn delivered(&self) -> u64 {
        self.producer.context().delivered.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }

    /// Waits until everything sent is delivered or has failed.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(kafka_error(&self.config, "cannot flush the producer"))?;
        let failed = self.failed();
        if failed > 0 {
            let first = self
                .producer
                .context()
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(IngestError::Invalid(format!(
                "{failed} events were not delivered to {} (first error: {first})",
                self.config.bootstrap_servers
            )));
        }
        Ok(())
    }
}
