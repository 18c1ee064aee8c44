//! CSV outputs of `movierec batch csv`: the top-N and both feature tables.

use crate::{Aggregates, BatchError};
use movierec_core::{FeatureAccumulator, TopN};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `top-movies.csv`, `movie-features.csv` and `user-features.csv` into
/// `dir`. Floats are printed in shortest round-trip form, so nothing is lost.
pub fn write_csv_outputs(
    dir: &Path,
    aggregates: &Aggregates,
    top: &TopN,
) -> Result<(), BatchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BatchError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;

    let path = dir.join("top-movies.csv");
    let mut out = BufWriter::new(File::create(&path).map_err(io(&path))?);
    let result: std::io::Result<()> = (|| {
        writeln!(out, "rank,movie_id,score,avg_rating,rating_count")?;
        for (rank, movie) in top.movies.iter().enumerate() {
            writeln!(
                out,
                "{},{},{},{},{}",
                rank + 1,
                movie.movie_id,
                movie.score,
                movie.avg_rating,
                movie.rating_count
            )?;
        }
        out.flush()
    })();
    result.map_err(io(&path))?;

    write_features(
        &dir.join("movie-features.csv"),
        "movie_id",
        &aggregates.movies,
    )?;
    write_features(&dir.join("user-features.csv"), "user_id", &aggregates.users)?;
    Ok(())
}

fn write_features(
    path: &Path,
    key: &str,
    rows: &[(u64, FeatureAccumulator)],
) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let result: std::io::Result<()> = (|| {
        writeln!(out, "{key},avg_rating,rating_count,std_dev,last_update")?;
        for (id, acc) in rows {
            let f = acc.features();
            writeln!(
                out,
                "{id},{},{},{},{}",
                f.avg_rating, f.rating_count, f.std_dev, f.last_update
            )?;
        }
        out.flush()
    })();
    result.map_err(io)
}
