//! The SQL mode's sources: the SQLite store's change log (written by its
//! triggers) and a key-ordered scan of its feature tables.

use crate::change::{Change, ChangeStream, FeatureTable, Op, ShardLag, SourceError, TableScan};
use async_trait::async_trait;
use movierec_core::FeatureAccumulator;
use movierec_store::{LoggedChange, LoggedRow, SqliteRatingStore};
use serde_json::{Value, json};

/// The published values of an accumulator, as the DynamoDB items hold them.
fn values(acc: &FeatureAccumulator) -> Vec<String> {
    let f = acc.features();
    vec![
        f.rating_count.to_string(),
        f.avg_rating.to_string(),
        f.std_dev.to_string(),
        f.last_update.to_iso8601(),
    ]
}

/// A change of one SQLite feature row; its size is that of its values plus
/// the fixed-width columns (key, sequence, accumulators: 48 bytes).
fn row_change(table: FeatureTable, key: i64, op: Op, version: i64, values: Vec<String>) -> Change {
    Change {
        table,
        key: key.to_string(),
        op,
        version: version.to_string(),
        source_bytes: 48 + values.iter().map(String::len).sum::<usize>(),
        values,
    }
}

fn source(what: &str) -> impl FnOnce(movierec_store::StoreError) -> SourceError + '_ {
    move |e| SourceError::new(what, e)
}

/// `feature_changes`, read in sequence order; the checkpoint is the last
/// sequence number exported, and released rows are dropped from the log.
pub struct SqliteChangeLog {
    store: SqliteRatingStore,
    after: i64,
}

impl SqliteChangeLog {
    /// Opens the log, creating its triggers if this is the first export.
    pub async fn open(store: SqliteRatingStore) -> Result<Self, SourceError> {
        store
            .enable_change_log()
            .await
            .map_err(source("cannot enable the change log"))?;
        Ok(Self { store, after: 0 })
    }

    fn convert(change: LoggedChange) -> Option<Change> {
        let table = FeatureTable::parse(&change.table)?;
        let (op, values) = match change.row {
            LoggedRow::Upserted(acc) => (Op::Upsert, values(&acc)),
            LoggedRow::Deleted => (Op::Delete, Vec::new()),
            // The count as it is; the derived values cannot be computed.
            LoggedRow::Undecodable(raw) => (
                Op::Upsert,
                vec![raw[0].clone(), String::new(), String::new(), String::new()],
            ),
        };
        Some(row_change(table, change.key, op, change.seq, values))
    }
}

fn seq_of(checkpoint: &Value) -> i64 {
    checkpoint["seq"].as_i64().unwrap_or(0)
}

#[async_trait]
impl ChangeStream for SqliteChangeLog {
    fn describe(&self) -> String {
        format!("the change log of {}", self.store.path().display())
    }

    async fn resume(&mut self, checkpoint: Option<Value>) -> Result<(), SourceError> {
        self.after = checkpoint.as_ref().map_or(0, seq_of);
        Ok(())
    }

    async fn poll(&mut self, max: usize) -> Result<Vec<Change>, SourceError> {
        let logged = self
            .store
            .changes_after(self.after, max)
            .await
            .map_err(source("cannot read the change log"))?;
        if let Some(last) = logged.last() {
            self.after = last.seq;
        }
        Ok(logged.into_iter().filter_map(Self::convert).collect())
    }

    fn checkpoint(&self) -> Value {
        json!({ "seq": self.after })
    }

    async fn release(&mut self, checkpoint: &Value) -> Result<(), SourceError> {
        self.store
            .drop_changes_through(seq_of(checkpoint))
            .await
            .map_err(source("cannot drop exported changes"))?;
        Ok(())
    }

    async fn lag(&mut self, checkpoint: Option<&Value>) -> Result<Vec<ShardLag>, SourceError> {
        let at = checkpoint.map_or(0, seq_of);
        let behind = self
            .store
            .changes_pending(at)
            .await
            .map_err(source("cannot count the change log"))?;
        Ok(vec![ShardLag {
            shard: "feature_changes".into(),
            position: Some(at.to_string()),
            behind: Some(behind),
            state: "open".into(),
        }])
    }
}

/// A feature table of the SQLite store in key order.
pub struct SqliteTableScan {
    store: SqliteRatingStore,
}

impl SqliteTableScan {
    /// Enables the change log first, so a change made during the scan is
    /// also in the log, with a higher version than the scan's.
    pub async fn open(store: SqliteRatingStore) -> Result<Self, SourceError> {
        store
            .enable_change_log()
            .await
            .map_err(source("cannot enable the change log"))?;
        Ok(Self { store })
    }
}

#[async_trait]
impl TableScan for SqliteTableScan {
    async fn page(
        &mut self,
        table: FeatureTable,
        after: Option<Value>,
        limit: usize,
    ) -> Result<(Vec<Change>, Option<Value>), SourceError> {
        // Read before the page: the rows read are at least this new, and any
        // later change comes through the log with a higher version.
        let version = self
            .store
            .last_change_seq()
            .await
            .map_err(source("cannot read the change log's sequence"))?;
        let after_key = after.as_ref().and_then(|v| v[table.key_column()].as_i64());
        let rows = self
            .store
            .feature_page(table.name(), after_key, limit)
            .await
            .map_err(source("cannot scan the feature table"))?;
        let next = if rows.len() < limit {
            None
        } else {
            rows.last()
                .map(|(key, _)| json!({ table.key_column(): key }))
        };
        let changes = rows
            .iter()
            .map(|(key, acc)| row_change(table, *key, Op::Upsert, version, values(acc)))
            .collect();
        Ok((changes, next))
    }
}
