//! MovieLens datasets: download them from GroupLens, read every layout
//! GroupLens has published, and generate synthetic data in the same format,
//! so every later stage (import, batch, benchmarks) has one way in.

pub mod download;
pub mod events;
pub mod movielens;
pub mod synth;

use std::path::{Path, PathBuf};

/// Every message names the file or URL involved and what was expected, as
/// these errors end up in front of a user at a terminal.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{dir} is not a MovieLens folder: expected ratings.csv and movies.csv (ml-latest-small, ml-25m, ml-32m), \
         ratings.dat and movies.dat (ml-1m, ml-10m) or u.data and u.item (ml-100k)"
    )]
    UnknownLayout { dir: PathBuf },
    #[error(
        "malformed line {0} (strict mode stops at the first one; without it such lines are counted and skipped)"
    )]
    Malformed(movielens::Malformed),
    #[error("{0}")]
    Download(String),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Write {
        path: path.to_path_buf(),
        source,
    }
}
