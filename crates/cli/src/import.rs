use anyhow::{Context, Result};
use movierec_datasets::movielens::{self, Malformed};
use movierec_store::{RatingStore, StoredRating};
use std::path::Path;

const BATCH: usize = 20_000;

pub struct ImportSummary {
    pub movies: u64,
    pub rows: u64,
    pub malformed: u64,
    pub first_malformed: Vec<Malformed>,
    pub stored: u64,
    pub seconds: f64,
}

impl ImportSummary {
    pub fn print(&self) {
        println!(
            "imported {} movies and {} rating rows in {:.1}s; the store holds {} ratings (one per user and movie)",
            self.movies, self.rows, self.seconds, self.stored
        );
        if self.malformed > 0 {
            println!("skipped {} malformed lines; the first:", self.malformed);
            for m in &self.first_malformed {
                println!("  {m}");
            }
        }
    }
}

/// Imports a MovieLens folder: movies, then ratings (latest wins), then the
/// real-time feature tables. Re-running it changes nothing.
pub async fn import_movielens(
    store: &dyn RatingStore,
    dir: &Path,
    strict: bool,
) -> Result<ImportSummary> {
    let started = std::time::Instant::now();
    let layout = movielens::detect_layout(dir)?;
    let mut movies = Vec::new();
    let movie_report = movielens::read_movies(dir, layout, strict, |m| movies.push(m))?;
    store.upsert_movies(&movies).await?;

    let total = movielens::ratings_file_size(dir, layout)?;
    let bar = crate::progress::bytes(total, "ratings");
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<StoredRating>>(4);
    let dir_owned = dir.to_path_buf();
    let reader_bar = bar.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let mut last = 0;
        let report = movielens::read_ratings(
            &dir_owned,
            layout,
            strict,
            |bytes| {
                reader_bar.inc(bytes.saturating_sub(last));
                last = bytes;
            },
            |row| {
                batch.push(StoredRating {
                    user_id: row.user_id,
                    movie_id: row.movie_id,
                    rating: row.rating,
                    timestamp: row.timestamp,
                });
                if batch.len() == BATCH {
                    // The receiver only goes away on a write error, reported below.
                    let _ = sender
                        .blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            },
        );
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
        report
    });
    while let Some(batch) = receiver.recv().await {
        store
            .upsert_ratings(&batch)
            .await
            .context("cannot store ratings")?;
    }
    let report = reader.await??;
    bar.finish_and_clear();
    store.rebuild_features().await?;
    let stored = store.rating_count().await?;
    let mut first_malformed = movie_report.first_malformed;
    first_malformed.extend(report.first_malformed);
    first_malformed.truncate(10);
    Ok(ImportSummary {
        movies: movie_report.rows,
        rows: report.rows,
        malformed: movie_report.malformed + report.malformed,
        first_malformed,
        stored,
        seconds: started.elapsed().as_secs_f64(),
    })
}
