use anyhow::{Context, Result};
use futures_util::StreamExt;
use movierec_batch::{GroupedAggregator, RatingRecord};
use movierec_config::Config;
use movierec_core::{BayesianParams, Movie};
use movierec_store::{BatchRun, PublishInput, RatingStore, ServingDb, ServingStore};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The embedded batch over the rating store: features and top-N, published
/// to the serving database in one transaction, and recorded as a run
/// whether it succeeds or fails.
pub async fn run_embedded(
    config: &Config,
    store: &dyn RatingStore,
    serving: &ServingDb,
) -> Result<BatchRun> {
    let started_at = now();
    let clock = Instant::now();
    let mut run = BatchRun {
        started_at,
        finished_at: String::new(),
        engine: "embedded".into(),
        source: format!("sqlite:{}", config.sqlite.path.display()),
        status: "running".into(),
        records_read: 0,
        ratings: 0,
        users: 0,
        movies: 0,
        ranked: 0,
        global_mean: 0.0,
        duration_ms: 0,
        error: None,
    };
    let params = BayesianParams {
        min_ratings: config.batch.min_ratings,
        top_n: config.batch.top_n,
    };
    let outcome = compute_and_publish(store, serving, params, &mut run).await;
    run.finished_at = now();
    run.duration_ms = clock.elapsed().as_millis() as u64;
    match &outcome {
        Ok(()) => run.status = "succeeded".into(),
        Err(error) => {
            run.status = "failed".into();
            run.error = Some(format!("{error:#}"));
        }
    }
    serving.record_run(&run).await?;
    outcome.map(|()| run)
}

async fn compute_and_publish(
    store: &dyn RatingStore,
    serving: &ServingDb,
    params: BayesianParams,
    run: &mut BatchRun,
) -> Result<()> {
    let mut aggregator = GroupedAggregator::new();
    let mut ratings = store.ratings_by_user();
    let mut seq = 0;
    while let Some(rating) = ratings.next().await {
        let rating = rating?;
        aggregator.push(RatingRecord {
            user: rating.user_id,
            movie: rating.movie_id,
            ts_ms: rating.timestamp.millis(),
            half_stars: rating.rating.half_stars(),
            seq,
        });
        seq += 1;
    }
    drop(ratings);
    let aggregates = aggregator
        .finish()
        .map_err(|e| anyhow::anyhow!("the store returned user {} out of order", e.user))?;
    let top = aggregates.top_n(params);

    let mut movies = store.movies().await?;
    let known: HashSet<u64> = movies.iter().map(|m| m.movie_id).collect();
    let unknown: Vec<Movie> = aggregates
        .movies
        .iter()
        .filter(|(id, _)| !known.contains(id))
        .map(|(id, _)| Movie {
            movie_id: *id,
            title: format!("Movie {id} (not in the catalogue)"),
            genres: Vec::new(),
            year: None,
        })
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            "{} rated movies are missing from the catalogue",
            unknown.len()
        );
    }
    movies.extend(unknown);

    serving
        .publish(PublishInput {
            movies: &movies,
            movie_features: &aggregates.movies,
            user_features: &aggregates.users,
            top: &top,
            histogram: &aggregates.histogram,
        })
        .await
        .context("cannot publish to the serving database")?;
    run.records_read = aggregates.records_read;
    run.ratings = aggregates.ratings();
    run.users = aggregates.users.len() as u64;
    run.movies = aggregates.movies.len() as u64;
    run.ranked = top.movies.len() as u64;
    run.global_mean = top.global_mean;
    Ok(())
}

pub fn print_run(run: &BatchRun) {
    println!(
        "batch {}: {} ratings, {} users, {} movies, top {} published (C = {:.4}) in {} ms",
        run.status,
        run.ratings,
        run.users,
        run.movies,
        run.ranked,
        run.global_mean,
        run.duration_ms
    );
}

pub async fn print_runs(serving: &ServingDb, limit: u64) -> Result<()> {
    let runs = serving.batch_runs(limit).await?;
    if runs.is_empty() {
        println!("no batch runs yet: run `movierec batch run`");
        return Ok(());
    }
    println!(
        "{:<21} {:<10} {:<9} {:>11} {:>9} {:>8} {:>6} {:>9}  source / error",
        "started", "engine", "status", "ratings", "users", "movies", "top", "ms"
    );
    for run in runs {
        println!(
            "{:<21} {:<10} {:<9} {:>11} {:>9} {:>8} {:>6} {:>9}  {}",
            run.started_at,
            run.engine,
            run.status,
            run.ratings,
            run.users,
            run.movies,
            run.ranked,
            run.duration_ms,
            run.error.as_deref().unwrap_or(&run.source)
        );
    }
    Ok(())
}

/// `batch csv`: a ratings file to CSV outputs, the path the benchmark measures.
pub fn run_csv(ratings: &Path, params: BayesianParams, out: &Path) -> Result<()> {
    let clock = Instant::now();
    let size = std::fs::metadata(ratings)
        .with_context(|| format!("cannot read {}", ratings.display()))?
        .len();
    let bar = crate::progress::bytes(size, "ratings");
    let aggregates = movierec_batch::aggregate_csv(ratings, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let read = clock.elapsed();
    let top = aggregates.top_n(params);
    movierec_batch::write_csv_outputs(out, &aggregates, &top)?;
    println!(
        "{} ratings ({} superseded), {} users, {} movies, {} ranked; top {} written to {} in {:.2}s (aggregation {:.2}s)",
        aggregates.ratings(),
        aggregates.superseded,
        aggregates.users.len(),
        aggregates.movies.len(),
        top.eligible,
        top.movies.len(),
        out.display(),
        clock.elapsed().as_secs_f64(),
        read.as_secs_f64()
    );
    Ok(())
}
