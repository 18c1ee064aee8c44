//! The consumer's sink in `storage_mode: aws`: each batch to the S3 bronze
//! layer and to the DynamoDB features. Both halves are idempotent, and the
//! Kafka offsets are committed only after both, so a batch replayed after a
//! crash or an outage rewrites the same objects and counts nothing twice.

use crate::{BronzeSink, FeatureSink};
use async_trait::async_trait;
use movierec_store::{ApplyOutcome, EventSink, StreamBatch};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct AwsSink {
    bronze: BronzeSink,
    features: FeatureSink,
    /// The next offsets written, for the lag in `/health`.
    progress: Mutex<BTreeMap<i32, i64>>,
}

impl AwsSink {
    pub fn new(bronze: BronzeSink, features: FeatureSink) -> Self {
        Self {
            bronze,
            features,
            progress: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn features(&self) -> &FeatureSink {
        &self.features
    }
}

#[async_trait]
impl EventSink for AwsSink {
    async fn apply_stream_batch(
        &self,
        batch: StreamBatch<'_>,
    ) -> movierec_store::Result<ApplyOutcome> {
        // Side by side: neither depends on the other, and the Kafka commit
        // waits for both.
        let (_, features) =
            futures_util::try_join!(self.bronze.write(batch), self.features.write(batch),)?;
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        for (partition, next) in batch.next_offsets {
            let slot = progress.entry(*partition).or_insert(*next);
            *slot = (*slot).max(*next);
        }
        Ok(features)
    }

    async fn stream_offsets(&self, _topic: &str) -> movierec_store::Result<Vec<(i32, i64)>> {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        Ok(progress.iter().map(|(p, o)| (*p, *o)).collect())
    }

    fn stores_progress(&self) -> bool {
        false
    }
}
