//! The consumer's sink in `storage_mode: aws`: each batch to the S3 bronze
//! layer and to the DynamoDB features. Both halves are idempotent, and the
//! Kafka offsets are committed only after both, so a batch replayed after a
//! crash or an outage rewrites the same objects and counts nothing twice.

use crate::{BronzeSink, FeatureSink};
use async_trait::async_trait;
use movierec_store::{ApplyOutcome, EventSink, StreamBatch};

pub struct AwsSink {
    bronze: BronzeSink,
    features: FeatureSink,
}

impl AwsSink {
    pub fn new(bronze: BronzeSink, features: FeatureSink) -> Self {
        Self { bronze, features }
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
        let (_, features) = futures_util::try_join!(
            self.bronze.apply_stream_batch(batch),
            self.features.apply_stream_batch(batch),
        )?;
        Ok(features)
    }

    async fn stream_offsets(&self, topic: &str) -> movierec_store::Result<Vec<(i32, i64)>> {
        self.features.stream_offsets(topic).await
    }

    fn stores_progress(&self) -> bool {
        false
    }
}
