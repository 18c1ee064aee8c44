use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
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

/// What an import into the lake wrote.
pub struct LakeImportSummary {
    pub movies: u64,
    pub ratings: u64,
    pub objects: u64,
    pub malformed: u64,
    pub first_malformed: Vec<Malformed>,
    pub lake: String,
    pub seconds: f64,
}

impl LakeImportSummary {
    pub fn print(&self) {
        println!(
            "imported {} movies (dataset silver/movies) and {} ratings into the bronze layer of {} \
             ({} Parquet objects, one per date) in {:.1}s; run `movierec batch run` to use them",
            self.movies, self.ratings, self.lake, self.objects, self.seconds
        );
        if self.malformed > 0 {
            println!("skipped {} malformed lines; the first:", self.malformed);
            for m in &self.first_malformed {
                println!("  {m}");
            }
        }
    }
}

/// A folder name as a key part: letters, digits, `-` and `_`.
fn key_name(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "movielens".into()
    } else {
        name
    }
}

/// Imports a MovieLens folder into the lake (aws mode, where there is no
/// rating store): the ratings become bronze events, one Parquet object per
/// date (`date=D/import-<FOLDER>.parquet`, the silver ratings' schema, file
/// order), and the movies the `silver/movies` dataset the batch takes its
/// catalogue from. Re-running rewrites the same objects; rows repeated by an
/// import after a compaction change nothing (the batch keeps the latest
/// rating per pair).
pub async fn import_movielens_to_lake(
    config: &movierec_config::Config,
    dir: &Path,
    strict: bool,
) -> Result<LakeImportSummary> {
    use movierec_batch::RatingRecord;
    use movierec_batch::parquet_tables::{catalogue_table, ratings_table};
    let started = std::time::Instant::now();
    let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
    let layout = movielens::detect_layout(dir)?;
    let mut movies = Vec::new();
    let movie_report = movielens::read_movies(dir, layout, strict, |m| movies.push(m))?;

    let total = movielens::ratings_file_size(dir, layout)?;
    let bar = crate::progress::bytes(total, "ratings");
    let (dir_owned, reader_bar) = (dir.to_path_buf(), bar.clone());
    let (by_date, report) = tokio::task::spawn_blocking(move || {
        let mut by_date: std::collections::BTreeMap<String, Vec<RatingRecord>> = Default::default();
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
                by_date
                    .entry(row.timestamp.date())
                    .or_default()
                    .push(RatingRecord {
                        user: row.user_id,
                        movie: row.movie_id,
                        ts_ms: row.timestamp.millis(),
                        half_stars: row.rating.half_stars(),
                        seq: 0,
                    });
            },
        );
        report.map(|r| (by_date, r))
    })
    .await??;
    bar.finish_and_clear();

    let name = key_name(dir);
    let bronze = config.aws.s3.bronze_prefix.trim_matches('/');
    let ratings = by_date.values().map(|r| r.len() as u64).sum::<u64>();
    let objects = by_date.len() as u64;
    // History spans thousands of dates: 16 PUTs in flight.
    let lake_ref = &lake;
    futures_util::stream::iter(by_date.iter())
        .map(|(date, records)| {
            let key = format!("{bronze}/date={date}/import-{name}.parquet");
            async move {
                lake_ref
                    .put(&key, ratings_table(records)?)
                    .await
                    .with_context(|| format!("cannot write {}/{key}", lake_ref.url()))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let catalogue = format!("{}/movies", config.aws.s3.silver_prefix.trim_matches('/'));
    let run_id = crate::batch::new_run_id();
    lake.publish_dataset(
        &catalogue,
        &run_id,
        vec![("part-00000.parquet".into(), catalogue_table(&movies)?)],
        movies.len() as u64,
    )
    .await
    .with_context(|| format!("cannot write {}/{catalogue}", lake.url()))?;
    let mut first_malformed = movie_report.first_malformed;
    first_malformed.extend(report.first_malformed);
    first_malformed.truncate(10);
    Ok(LakeImportSummary {
        movies: movie_report.rows,
        ratings,
        objects,
        malformed: movie_report.malformed + report.malformed,
        first_malformed,
        lake: lake.url().to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
