//! Topic administration and the consumer group's lag as Kafka sees it: what
//! `movierec bench ingest` needs to run each measurement on a topic of its
//! own and to sample the lag while events flow.

use crate::{IngestError, Result, client_config, kafka_error};
use movierec_config::KafkaConfig;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::Offset;
use std::time::Duration;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker that is not there fails the request in this long, not librdkafka's minute.
fn options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT))
}

fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>> {
    client_config(config, &[])
        .create()
        .map_err(kafka_error(config, "cannot create an admin client"))
}

/// Creates `name` with `partitions` partitions (replication 1 unless the
/// broker decides otherwise); an existing topic is an error naming it.
pub async fn create_topic(config: &KafkaConfig, name: &str, partitions: i32) -> Result<()> {
    let results = admin(config)?
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &options(),
        )
        .await
        .map_err(kafka_error(config, format!("cannot create topic {name}")))?;
    for result in results {
        result.map_err(|(topic, code)| {
            IngestError::Invalid(format!(
                "Kafka ({}): cannot create topic {topic}: {code}",
                config.bootstrap_servers
            ))
        })?;
    }
    Ok(())
}

/// Deletes topics, best effort: returns the ones the broker refused.
pub async fn delete_topics(config: &KafkaConfig, names: &[&str]) -> Vec<String> {
    let Ok(admin) = admin(config) else {
        return names.iter().map(|n| n.to_string()).collect();
    };
    match admin.delete_topics(names, &options()).await {
        Ok(results) => results
            .into_iter()
            .filter_map(|r| r.err().map(|(topic, _)| topic))
            .collect(),
        Err(_) => names.iter().map(|n| n.to_string()).collect(),
    }
}

/// One look at a topic: everything written (the sum of the partitions' high
/// watermarks) and what the group has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    pub produced: i64,
    pub committed: i64,
}

impl LagSample {
    pub fn lag(&self) -> i64 {
        (self.produced - self.committed).max(0)
    }
}

/// Reads a group's committed offsets without joining it (a client of its
/// own, never subscribed), so probing does not disturb the consumer.
pub struct LagProbe {
    consumer: BaseConsumer,
    config: KafkaConfig,
    topic: String,
    partitions: i32,
}

impl LagProbe {
    pub fn new(config: &KafkaConfig, group_id: &str, topic: &str, partitions: i32) -> Result<Self> {
        let consumer = client_config(
            config,
            &[("group.id", group_id), ("enable.auto.commit", "false")],
        )
        .create()
        .map_err(kafka_error(config, "cannot create a lag probe"))?;
        Ok(Self {
            consumer,
            config: config.clone(),
            topic: topic.to_string(),
            partitions,
        })
    }

    /// Blocking: a metadata round trip per partition and one for the group.
    pub fn sample(&self, timeout: Duration) -> Result<LagSample> {
        let mut produced = 0;
        let mut list = TopicPartitionList::new();
        for partition in 0..self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, timeout)
                .map_err(kafka_error(
                    &self.config,
                    format!("cannot read the end of {}/{partition}", self.topic),
                ))?;
            produced += high.max(0);
            list.add_partition(&self.topic, partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, timeout)
            .map_err(kafka_error(
                &self.config,
                format!("cannot read the group's offsets on {}", self.topic),
            ))?
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o.max(0),
                _ => 0,
            })
            .sum();
        Ok(LagSample {
            produced,
            committed,
        })
    }
}
