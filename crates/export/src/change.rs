//! What flows through the export: one change of one feature row, and the two
//! ways of reading them (a change stream, a table scan).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The exported tables: the real-time features, as the seed's DynamoDB
/// tables hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureTable {
    UserFeatures,
    MovieFeatures,
}

impl FeatureTable {
    pub const ALL: [FeatureTable; 2] = [Self::UserFeatures, Self::MovieFeatures];

    /// The name in the lake and in the warehouse.
    pub fn name(self) -> &'static str {
        match self {
            Self::UserFeatures => "user_features",
            Self::MovieFeatures => "movie_features",
        }
    }

    pub fn key_column(self) -> &'static str {
        match self {
            Self::UserFeatures => "user_id",
            Self::MovieFeatures => "movie_id",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// An upsert carries the row's new values; a delete only its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Upsert,
    Delete,
}

/// The exported columns after the key, in file order. Values travel as text,
/// as the source holds them: the warehouse's column types decide what is
/// valid, and a row it rejects is isolated (bisected) rather than guessed at.
pub const VALUE_COLUMNS: [&str; 4] = ["rating_count", "avg_rating", "std_dev", "last_update"];

/// One change of one feature row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub table: FeatureTable,
    pub key: String,
    pub op: Op,
    /// Orders the changes of one row: the item's `version` (DynamoDB) or the
    /// change log's sequence number (SQLite). The warehouse keeps the
    /// highest, so replays and reorderings change nothing.
    pub version: String,
    /// [`VALUE_COLUMNS`], empty for a delete.
    pub values: Vec<String>,
    /// The size of the source record (the item's image), for
    /// `export.max_record_bytes`.
    pub source_bytes: usize,
}

/// A failure of a change source, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct SourceError {
    pub context: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl SourceError {
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// One shard (or the change log) as `cdc status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardLag {
    pub shard: String,
    /// The last position exported from it, if any.
    pub position: Option<String>,
    /// Changes (or, for DynamoDB, records read ahead) not yet exported, when known.
    pub behind: Option<u64>,
    /// `open`, `closed` (split; read to its end) or `done`.
    pub state: String,
}

/// A change stream: DynamoDB Streams (all shards) or the SQLite change log.
///
/// The exporter polls changes into its buffers, writes them to files, and
/// only then saves [`ChangeStream::checkpoint`], so after a crash the stream
/// resumes at the last saved checkpoint and re-reads (harmlessly: the
/// warehouse keeps the highest version) what was buffered.
#[async_trait]
pub trait ChangeStream: Send {
    /// What is read, for logs and status (e.g. the stream ARN).
    fn describe(&self) -> String;
    /// Starts after `checkpoint` (as [`ChangeStream::checkpoint`] gave it), or
    /// at the oldest change kept when `None`.
    async fn resume(&mut self, checkpoint: Option<Value>) -> Result<(), SourceError>;
    /// The next changes, at most about `max`; empty when caught up for now.
    async fn poll(&mut self, max: usize) -> Result<Vec<Change>, SourceError>;
    /// The position after every change polled so far.
    fn checkpoint(&self) -> Value;
    /// Everything up to `checkpoint` is in the lake: a source that keeps its
    /// own log (SQLite) may drop it.
    async fn release(&mut self, checkpoint: &Value) -> Result<(), SourceError>;
    /// Per shard: position and lag relative to `checkpoint`.
    async fn lag(&mut self, checkpoint: Option<&Value>) -> Result<Vec<ShardLag>, SourceError>;
}

/// A full scan of a feature table, a page at a time (`cdc backfill`).
#[async_trait]
pub trait TableScan: Send {
    /// The page after `after` (the last evaluated key of the previous page;
    /// `None` for the first), at most `limit` items: its changes (upserts
    /// with the item's current version) and the key to continue after,
    /// `None` at the end of the table.
    async fn page(
        &mut self,
        table: FeatureTable,
        after: Option<Value>,
        limit: usize,
    ) -> Result<(Vec<Change>, Option<Value>), SourceError>;
}
