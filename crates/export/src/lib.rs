//! The warehouse export (SPEC §8, the seed's lab 004 done properly): the
//! feature tables' change stream is buffered like Firehose (by size or age),
//! written as large gzip CSV files under `<lake>/exports/<table>/date=…/hour=…/`
//! with one manifest per load, and loaded into a warehouse: PostgreSQL (COPY
//! into a staging table, upsert, in one transaction) or Redshift (COPY from
//! the manifest). A record the warehouse rejects is isolated by bisection
//! and dead-lettered with the reason; the rest goes on.
//!
//! Sources implement [`ChangeStream`] (a change stream) and [`TableScan`]
//! (`cdc backfill`): the SQLite store's change log here ([`sqlite`]),
//! DynamoDB Streams and Scan in `movierec-aws`.

pub mod change;
pub mod files;
pub mod pipeline;
pub mod sqlite;
pub mod warehouse;

pub use change::{
    Change, ChangeStream, FeatureTable, Op, ShardLag, SourceError, TableScan, VALUE_COLUMNS,
};
pub use files::ExportLayout;
pub use pipeline::{DeadLetter, DeadLetterTopic, Exporter, Settings, Status, StopFlag, Summary};
pub use warehouse::{Postgres, Redshift, Warehouse};

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Lake(#[from] movierec_lake::LakeError),
    #[error("reading changes: {0}")]
    Source(SourceError),
    #[error("load {load_id} into {warehouse} failed after {attempts} attempt(s): {message}")]
    Load {
        load_id: String,
        warehouse: String,
        attempts: u32,
        message: String,
    },
    #[error("the warehouse: {0}")]
    Warehouse(String),
    #[error("cannot compress a file: {0}")]
    Encode(String),
    #[error("{0} is missing from the lake (named by a manifest)")]
    Missing(String),
    #[error("unreadable export file {0}")]
    Corrupt(String),
    #[error("dead letters could not be sent to {0}")]
    DeadLetters(String),
}

impl ExportError {
    fn from_load(error: warehouse::LoadError) -> Self {
        Self::Warehouse(error.to_string())
    }
}
