//! The bronze layer writer (`storage_mode: aws`): valid events as JSON lines
//! under `bronze/user-events/date=YYYY-MM-DD/`, one object per consumer batch,
//! source partition and event date, written through the lake.
//!
//! Exactly once without a progress store of its own: an object is named by
//! its partition and the offset of its first event
//! (`p001-00000000000000004200.json`), and the Kafka offsets are committed,
//! synchronously, only after every object of a batch is stored. After a crash
//! the next batch of a partition starts at the same offset as the lost one,
//! so each of its objects has the same first event and the same name, and
//! the PUT replaces the earlier object whole: every event lands in exactly one
//! object. (A shorter replay leaves a later object of the lost batch behind
//! only until the batch that holds that object's first event rewrites it.)

use bytes::Bytes;
use movierec_lake::Lake;
use movierec_store::{ApplyOutcome, StoreError, StreamBatch};
use std::collections::BTreeMap;

/// The key of the object holding a partition's events of one date, from
/// `first_offset` on, in one batch.
pub fn bronze_key(prefix: &str, date: &str, partition: i32, first_offset: i64) -> String {
    let prefix = prefix.trim_matches('/');
    format!("{prefix}/date={date}/p{partition:03}-{first_offset:020}.json")
}

pub struct BronzeSink {
    lake: Lake,
    prefix: String,
}

impl BronzeSink {
    pub fn new(lake: Lake, bronze_prefix: &str) -> Self {
        Self {
            lake,
            prefix: bronze_prefix.to_string(),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }
}

impl BronzeSink {
    /// Writes a batch's objects (one half of [`crate::AwsSink`]).
    pub async fn write(&self, batch: StreamBatch<'_>) -> movierec_store::Result<ApplyOutcome> {
        // (partition, date) -> (first offset, JSON lines), events in stream order.
        let mut objects: BTreeMap<(i32, String), (i64, Vec<u8>)> = BTreeMap::new();
        for sourced in batch.events {
            let (_, lines) = objects
                .entry((sourced.partition, sourced.event.timestamp.date()))
                .or_insert_with(|| (sourced.offset, Vec::new()));
            lines.extend_from_slice(sourced.event.to_json().as_bytes());
            lines.push(b'\n');
        }
        let puts = objects
            .into_iter()
            .map(|((partition, date), (first, lines))| {
                let key = bronze_key(&self.prefix, &date, partition, first);
                async move {
                    self.lake
                        .put(&key, Bytes::from(lines))
                        .await
                        .map_err(|e| StoreError::Sink(e.to_string()))
                }
            });
        let written = futures_util::future::try_join_all(puts).await?;
        Ok(ApplyOutcome {
            accepted: batch.events.len(),
            superseded: 0,
            replayed: 0,
            ratings_written: written.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_date_partition_and_offset() {
        assert_eq!(
            bronze_key("bronze/user-events/", "2025-03-15", 2, 4200),
            "bronze/user-events/date=2025-03-15/p002-00000000000000004200.json"
        );
        let a = bronze_key("b", "2025-03-15", 1, 99);
        let b = bronze_key("b", "2025-03-15", 1, 100);
        assert!(a < b, "zero padding keeps offset order");
    }
}
