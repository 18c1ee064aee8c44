//! The Kafka adapter (rdkafka over the bundled librdkafka).
//!
//! - [`producer`]: sends rating events (the API's `POST /api/ratings`, and
//!   `movierec produce` for synthetic streams and MovieLens replays).
//! - [`consumer`]: the consumer group on `user-events`. Valid events go to a
//!   [`movierec_store::EventSink`] in batches: the SQLite store keeps each
//!   batch's stream positions in the same transaction as its data and skips
//!   replayed ones; the S3 bronze writer relies on a synchronous Kafka commit
//!   after its objects are stored (exactly-once effect either way). Invalid
//!   events go to the dead-letter topic before their batch commits.
//! - [`dlq`]: the dead-letter topic: headers, listing and replay.
//! - [`admin`]: topics created and deleted, and a group's lag as Kafka sees it.
//!
//! Every client takes `kafka.properties` as extra librdkafka settings, so
//! SASL, TLS and timeouts of any cluster can be set from the configuration.

pub mod admin;
pub mod consumer;
pub mod dlq;
pub mod producer;
mod status;

pub use consumer::{ConsumeSummary, ConsumerOptions, run_consumer};
pub use producer::EventProducer;
pub use status::IngestStatus;

use movierec_config::KafkaConfig;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Kafka ({bootstrap}): {what}: {source}")]
    Kafka {
        bootstrap: String,
        what: String,
        #[source]
        source: Box<KafkaError>,
    },
    /// The group no longer counts this consumer as a member (it went silent
    /// past `session.timeout.ms`, or the group rebalanced under a commit):
    /// the broker refuses its commits until it joins again.
    #[error(
        "Kafka ({bootstrap}): consumer group {group} dropped this consumer ({source}); \
         was it paused longer than session.timeout.ms?"
    )]
    LeftGroup {
        bootstrap: String,
        group: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error(transparent)]
    Store(#[from] movierec_store::StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

pub(crate) fn kafka_error(
    config: &KafkaConfig,
    what: impl Into<String>,
) -> impl FnOnce(KafkaError) -> IngestError {
    let bootstrap = config.bootstrap_servers.clone();
    let what = what.into();
    move |source| IngestError::Kafka {
        bootstrap,
        what,
        source: Box::new(source),
    }
}

/// librdkafka settings shared by every client: the brokers, then the user's
/// `kafka.properties`, which win over our defaults.
pub(crate) fn client_config(config: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap_servers);
    client.set("client.id", "movierec");
    for (key, value) in defaults {
        client.set(*key, *value);
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
}
