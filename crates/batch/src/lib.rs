//! The embedded batch engine: ratings → user and movie features → Bayesian top-N.
//!
//! Ratings arrive grouped by user in every source we have (MovieLens files,
//! synthetic files, the SQLite rating table read in key order), so the engine
//! streams user by user: it keeps one user's ratings at a time, resolves
//! re-ratings (latest wins) inside that user, and folds the rest into exact
//! integer accumulators. Work is split into chunks of the file that run on all
//! cores; accumulators merge exactly, so the result does not depend on the
//! number of threads. Input that is not grouped by user falls back to a sort.

mod aggregate;
mod csv_input;
mod output;
pub mod parquet_tables;

pub use aggregate::{
    Aggregates, GroupedAggregator, NotGrouped, RatingRecord, aggregate_grouped, aggregate_records,
};
pub use csv_input::aggregate_csv;
pub use output::write_csv_outputs;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}
