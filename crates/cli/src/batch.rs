use anyhow::{Context, Result};
use futures_util::StreamExt;
use movierec_batch::RatingRecord;
use movierec_config::{Config, Engine};
use movierec_core::{BayesianParams, Movie};
use movierec_store::{BatchRun, BatchStage, PublishInput, RatingStore, ServingDb, ServingStore};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Appends a finished stage to the run's record.
pub(crate) fn stage(
    run: &mut BatchRun,
    name: &str,
    rows: u64,
    started: Instant,
    detail: impl Into<String>,
) {
    let detail = detail.into();
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!("stage {name}: {rows} rows in {ms} ms {detail}");
    run.stages.push(BatchStage {
        name: name.into(),
        rows,
        ms,
        detail,
    });
}

/// A new run's id: the UTC time, to the millisecond, so ids sort by time.
pub(crate) fn new_run_id() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// What one run computes from, whichever engine computes it.
#[derive(Clone, Copy)]
pub(crate) struct RunInputs<'a> {
    pub config: &'a Config,
    pub lake: &'a movierec_lake::Lake,
    pub selection: &'a Selection,
    pub store: Option<&'a dyn RatingStore>,
    pub catalogue: &'a [Movie],
    pub run_id: &'a str,
    /// The snapshot date, in days since 1970-01-01.
    pub days: i32,
}

impl RunInputs<'_> {
    /// The snapshot date as YYYY-MM-DD.
    pub fn snapshot_date(&self) -> String {
        (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
            + chrono::Days::new(self.days as u64))
        .format("%Y-%m-%d")
        .to_string()
    }
}

/// What computes a run.
#[derive(Debug, Clone)]
pub enum Runner {
    Embedded,
    Spark(crate::spark::Target),
}

impl From<Engine> for Runner {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Embedded => Self::Embedded,
            Engine::Spark => Self::Spark(crate::spark::Target::Submit),
        }
    }
}

/// `batch run` and `emr submit`: opens what the storage mode has (the
/// rating store in sqlite mode) and the serving database, and runs.
pub async fn run_configured(
    config: &Config,
    selection: &Selection,
    runner: &Runner,
) -> Result<BatchRun> {
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    match config.storage_mode {
        movierec_config::StorageMode::Sqlite => {
            let store = crate::open_rating_store(config).await?;
            run_batch(config, selection, runner, Some(&store), &serving).await
        }
        movierec_config::StorageMode::Aws => {
            run_batch(config, selection, runner, None, &serving).await
        }
    }
}

/// Which bronze partitions a run reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every bronze partition; the previous silver ratings are not read.
    All,
    /// `date=FROM` to `date=TO` (inclusive), on top of the previous silver
    /// ratings: the incremental daily run.
    Dates { from: String, to: String },
}

impl Selection {
    fn includes(&self, date: &str) -> bool {
        match self {
            Self::All => true,
            Self::Dates { from, to } => from.as_str() <= date && date <= to.as_str(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::All => "all dates".into(),
            Self::Dates { from, to } if from == to => format!("date={from}"),
            Self::Dates { from, to } => format!("date={from}..{to}"),
        }
    }

    /// Days since 1970-01-01 of the snapshot this run makes.
    fn snapshot_days(&self) -> i32 {
        let date = match self {
            Self::All => chrono::Utc::now().date_naive(),
            Self::Dates { to, .. } => chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d")
                .unwrap_or_else(|_| chrono::Utc::now().date_naive()),
        };
        (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")).num_days()
            as i32
    }
}

/// The run's selection from `batch run`'s flags, dates checked.
pub fn selection(dates: &crate::cli::DateSelection) -> Result<Selection> {
    let (date, from, to, yesterday) = (
        dates.date.as_deref(),
        dates.from.as_deref(),
        dates.to.as_deref(),
        dates.yesterday,
    );
    let day = |flag: &str, text: &str| -> Result<String> {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| {
                anyhow::anyhow!("{flag} {text:?}: expected a date as YYYY-MM-DD, e.g. 2025-03-15")
            })
    };
    if yesterday {
        let d = (chrono::Utc::now().date_naive() - chrono::Days::new(1))
            .format("%Y-%m-%d")
            .to_string();
        return Ok(Selection::Dates {
            from: d.clone(),
            to: d,
        });
    }
    if let Some(date) = date {
        let d = day("--date", date)?;
        return Ok(Selection::Dates {
            from: d.clone(),
            to: d,
        });
    }
    match (from, to) {
        (Some(from), Some(to)) => {
            let (from, to) = (day("--from", from)?, day("--to", to)?);
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            Ok(Selection::Dates { from, to })
        }
        _ => Ok(Selection::All),
    }
}

/// The batch (bronze → silver → gold → publish) on either engine: reads
/// the selected bronze partitions of the lake, the previous silver ratings
/// (incremental runs) and the rating store (sqlite mode); writes the silver
/// and gold datasets (each switching atomically), publishes to the serving
/// database in one transaction, and records the run whether it succeeds or fails.
pub async fn run_batch(
    config: &Config,
    selection: &Selection,
    runner: &Runner,
    store: Option<&dyn RatingStore>,
    serving: &ServingDb,
) -> Result<BatchRun> {
    let started_at = now();
    let clock = Instant::now();
    let mut run = BatchRun {
        started_at,
        finished_at: String::new(),
        engine: match runner {
            Runner::Embedded => "embedded".into(),
            Runner::Spark(crate::spark::Target::Submit) => "spark".into(),
            Runner::Spark(crate::spark::Target::Emr { .. }) => "spark-emr".into(),
        },
        source: format!("lake {} ({})", config.lake_root(), selection.describe()),
        status: "running".into(),
        records_read: 0,
        ratings: 0,
        users: 0,
        movies: 0,
        ranked: 0,
        global_mean: 0.0,
        duration_ms: 0,
        error: None,
        stages: Vec::new(),
    };
    let outcome = compute_and_publish(config, selection, runner, store, serving, &mut run).await;
    run.finished_at = now();
    run.duration_ms = clock.elapsed().as_millis() as u64;
    match &outcome {
        Ok(()) => run.status = "succeeded".into(),
        Err(error) => {
            run.status = "failed".into();
            run.error = Some(crate::describe(error));
        }
    }
    serving.record_run(&run).await?;
    outcome.map(|()| run)
}

/// The bronze events of the selected dates, in key order (date, partition,
/// first offset: stream order within a partition), as records numbered from
/// `seq`, appended to `records`. Returns the objects read and the lines that
/// were not events. Objects are decoded in parallel, 64 MB at a time, so
/// memory holds the records and one window of raw bytes, not the whole layer;
/// `records` is reserved up front from the objects' sizes, because growing a
/// vector of tens of millions of records by doubling holds both copies at once.
async fn read_bronze(
    lake: &movierec_lake::Lake,
    prefix: &str,
    selection: &Selection,
    seq: &mut u64,
    records: &mut Vec<RatingRecord>,
) -> Result<(usize, u64)> {
    use movierec_lake::LiveRead;
    const WINDOW_BYTES: usize = 64 << 20;
    let prefix = format!("{}/", prefix.trim_matches('/'));
    let wanted = |key: &str| selected(&prefix, selection, key);
    let first_seq = *seq;
    let first_record = records.len();
    let mut window: Vec<(String, bytes::Bytes)> = Vec::new();
    let mut window_bytes = 0usize;
    let (mut objects, mut bad_lines) = (0usize, 0u64);
    let mut failure: Option<anyhow::Error> = None;
    let flush = |window: &mut Vec<(String, bytes::Bytes)>,
                 records: &mut Vec<RatingRecord>,
                 seq: &mut u64,
                 bad_lines: &mut u64|
     -> Result<()> {
        for (decoded, (key, _)) in movierec_batch::parquet_tables::decode_bronze_all(window)
            .into_iter()
            .zip(window.iter())
        {
            let (rows, bad) = decoded.with_context(|| format!("cannot read {key}"))?;
            *bad_lines += bad;
            for mut row in rows {
                row.seq = *seq;
                *seq += 1;
                records.push(row);
            }
        }
        window.clear();
        Ok(())
    };
    // Live files only, read consistently: a compacted partition counts each
    // line once, even while a compaction runs.
    lake.visit_live(&prefix, &wanted, &mut |read| {
        if failure.is_some() {
            return;
        }
        match read {
            LiveRead::File(key, bytes) => {
                objects += 1;
                window_bytes += bytes.len();
                window.push((key, bytes));
                if window_bytes >= WINDOW_BYTES {
                    window_bytes = 0;
                    if let Err(error) = flush(&mut window, records, seq, &mut bad_lines) {
                        failure = Some(error);
                    }
                }
            }
            LiveRead::Listed(entries) => {
                records.truncate(first_record);
                window.clear();
                window_bytes = 0;
                (objects, bad_lines) = (0, 0);
                *seq = first_seq;
                // Upper bounds (a JSON event is over 48 bytes, a Parquet row
                // over 2): reserved pages that are never written cost no memory.
                let estimate: u64 = entries
                    .iter()
                    .map(|e| {
                        if e.key.ends_with(".parquet") {
                            e.size / 2
                        } else {
                            e.size / 48
                        }
                    })
                    .sum();
                records.reserve(estimate as usize);
            }
        }
    })
    .await?;
    if let Some(error) = failure {
        return Err(error);
    }
    flush(&mut window, records, seq, &mut bad_lines)?;
    Ok((objects, bad_lines))
}

async fn compute_and_publish(
    config: &Config,
    selection: &Selection,
    runner: &Runner,
    store: Option<&dyn RatingStore>,
    serving: &ServingDb,
    run: &mut BatchRun,
) -> Result<()> {
    let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
    let run_id = new_run_id();
    let days = selection.snapshot_days();
    // The catalogue: the rating store's, or (aws mode) the one an import
    // put in the lake.
    let mut movies = match store {
        Some(store) => store.movies().await?,
        None => {
            let prefix = format!("{}/movies", config.aws.s3.silver_prefix.trim_matches('/'));
            let mut movies = Vec::new();
            if let Some((_, files)) = lake.read_dataset(&prefix).await? {
                for file in files {
                    movies.extend(
                        movierec_batch::parquet_tables::read_catalogue(file)
                            .with_context(|| format!("cannot read {}/{prefix}", lake.url()))?,
                    );
                }
            }
            movies
        }
    };
    let inputs = RunInputs {
        config,
        lake: &lake,
        selection,
        store,
        catalogue: &movies,
        run_id: &run_id,
        days,
    };
    let (aggregates, top) = match runner {
        Runner::Embedded => embedded(inputs, run).await?,
        Runner::Spark(target) => crate::spark::run(inputs, run, target).await?,
    };
    let snapshot_date = inputs.snapshot_date();

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
    let clock = Instant::now();
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
    stage(
        run,
        "publish",
        (movies.len() + aggregates.users.len() + top.movies.len()) as u64,
        clock,
        format!(
            "{} movies, {} user features, top {} to {}",
            movies.len(),
            aggregates.users.len(),
            top.movies.len(),
            serving.display_url()
        ),
    );
    if config.models.enabled {
        crate::models::train_and_publish(config, &lake, serving, &run_id, &snapshot_date, run)
            .await
            .context("cannot train the personalized models")?;
    }
    if config.storage_mode == movierec_config::StorageMode::Aws {
        let clock = Instant::now();
        let aws = movierec_aws::Aws::connect(&config.aws).await?;
        let refresh = aws
            .feature_sink()
            .refresh_batch_features(
                &aggregates.users,
                &aggregates.movies,
                &snapshot_date,
                &run_id,
            )
            .await
            .context("cannot refresh the batch features in DynamoDB")?;
        if refresh.differing > 0 {
            tracing::warn!(
                "{} DynamoDB feature items count other ratings than the lake ({} never written by \
                 the stream): events after the lake snapshot, or drift worth a look",
                refresh.differing,
                refresh.stream_missing
            );
        }
        stage(
            run,
            "dynamodb",
            refresh.items,
            clock,
            format!(
                "`batch` map of {} user and {} movie items in {} / {}; {} differ from the stream \
                 ({} not written by it)",
                aggregates.users.len(),
                aggregates.movies.len(),
                config.aws.dynamodb.user_features_table,
                config.aws.dynamodb.movie_features_table,
                refresh.differing,
                refresh.stream_missing
            ),
        );
    }
    run.records_read = aggregates.records_read;
    run.ratings = aggregates.ratings();
    run.users = aggregates.users.len() as u64;
    run.movies = aggregates.movies.len() as u64;
    run.ranked = top.movies.len() as u64;
    run.global_mean = top.global_mean;
    Ok(())
}

/// The dataset prefixes of the lake layout.
pub(crate) struct Layout {
    pub ratings: String,
    pub user_features: String,
    pub movie_features: String,
    pub top_movies: String,
}

impl Layout {
    pub(crate) fn new(config: &Config) -> Self {
        let layers = &config.aws.s3;
        let silver = |name: &str| format!("{}/{name}", layers.silver_prefix.trim_matches('/'));
        let gold = |name: &str| format!("{}/{name}", layers.gold_prefix.trim_matches('/'));
        Self {
            ratings: silver("ratings"),
            user_features: silver("user-features"),
            movie_features: silver("movie-features"),
            top_movies: gold("top-movies"),
        }
    }
}

/// The rating store's ratings as records numbered from `seq`.
pub(crate) async fn store_records(
    store: &dyn RatingStore,
    seq: &mut u64,
) -> Result<Vec<RatingRecord>> {
    let mut records = Vec::new();
    let mut ratings = store.ratings_by_user();
    while let Some(rating) = ratings.next().await {
        let rating = rating?;
        records.push(RatingRecord {
            user: rating.user_id,
            movie: rating.movie_id,
            ts_ms: rating.timestamp.millis(),
            half_stars: rating.rating.half_stars(),
            seq: *seq,
        });
        *seq += 1;
    }
    Ok(records)
}

/// The bronze keys of the selected dates, live (compaction rules applied).
pub(crate) fn selected(prefix: &str, selection: &Selection, key: &str) -> bool {
    (key.ends_with(".json") || key.ends_with(".parquet"))
        && key
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("date="))
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|date| selection.includes(date))
}

async fn embedded(
    inputs: RunInputs<'_>,
    run: &mut BatchRun,
) -> Result<(movierec_batch::Aggregates, movierec_core::TopN)> {
    let RunInputs {
        config,
        lake,
        selection,
        store,
        catalogue,
        run_id,
        days,
    } = inputs;
    use movierec_batch::parquet_tables as tables;
    let params = BayesianParams {
        min_ratings: config.batch.min_ratings,
        top_n: config.batch.top_n,
    };
    let layout = Layout::new(config);
    let mut seq = 0u64;
    let mut records = Vec::new();
    let mut inputs = Vec::new();
    let clock = Instant::now();

    // Oldest first: equal event times go to the later record.
    if *selection != Selection::All
        && let Some((manifest, files)) = lake.read_dataset(&layout.ratings).await?
    {
        for file in files {
            let previous = tables::read_ratings(file, seq)?;
            seq += previous.len() as u64;
            records.extend(previous);
        }
        inputs.push(format!(
            "silver ratings of run {} ({} rows)",
            manifest.run_id, manifest.rows
        ));
    }
    if let Some(store) = store {
        let stored = store_records(store, &mut seq).await?;
        inputs.push(format!("rating store ({} ratings)", stored.len()));
        records.extend(stored);
    }
    let before = records.len();
    let (objects, bad_lines) = read_bronze(
        lake,
        &config.aws.s3.bronze_prefix,
        selection,
        &mut seq,
        &mut records,
    )
    .await?;
    inputs.push(format!(
        "bronze {} ({} events in {objects} objects{})",
        selection.describe(),
        records.len() - before,
        if bad_lines > 0 {
            format!(", {bad_lines} bad lines skipped")
        } else {
            String::new()
        }
    ));
    run.source = format!("lake {}: {}", lake.url(), inputs.join(", "));
    let records_read = records.len() as u64;
    stage(run, "read", records_read, clock, inputs.join(", "));

    let clock = Instant::now();
    let (latest, superseded) = tables::latest_ratings(records);
    stage(
        run,
        "latest",
        latest.len() as u64,
        clock,
        format!("latest rating per (user, movie); {superseded} superseded"),
    );
    let clock = Instant::now();
    let mut aggregates = tables::aggregate_latest(&latest);
    aggregates.records_read = records_read;
    aggregates.superseded = superseded;
    stage(
        run,
        "features",
        (aggregates.users.len() + aggregates.movies.len()) as u64,
        clock,
        format!(
            "{} users, {} movies",
            aggregates.users.len(),
            aggregates.movies.len()
        ),
    );
    let clock = Instant::now();
    let top = aggregates.top_n(params);
    stage(
        run,
        "gold",
        top.movies.len() as u64,
        clock,
        format!(
            "{} eligible (>= {} ratings), C = {:.4}",
            top.eligible, params.min_ratings, top.global_mean
        ),
    );

    // Silver and gold: each dataset switches whole when its manifest is written.
    let clock = Instant::now();
    let catalogue: std::collections::HashMap<u64, Movie> =
        catalogue.iter().map(|m| (m.movie_id, m.clone())).collect();
    let part = |i: usize| format!("part-{i:05}.parquet");
    let one = |bytes| vec![(part(0), bytes)];
    let datasets = [
        (
            layout.ratings,
            tables::ratings_parts(&latest)?
                .into_iter()
                .enumerate()
                .map(|(i, bytes)| (part(i), bytes))
                .collect::<Vec<_>>(),
            latest.len(),
        ),
        (
            layout.user_features,
            one(tables::features_table("user_id", &aggregates.users, days)?),
            aggregates.users.len(),
        ),
        (
            layout.movie_features,
            one(tables::features_table(
                "movie_id",
                &aggregates.movies,
                days,
            )?),
            aggregates.movies.len(),
        ),
        (
            layout.top_movies,
            one(tables::top_movies_table(&top, &catalogue, days)?),
            top.movies.len(),
        ),
    ];
    let mut written = Vec::new();
    let mut rows_written = 0;
    for (prefix, files, rows) in datasets {
        written.push(format!("{prefix} {rows}"));
        rows_written += rows as u64;
        lake.publish_dataset(&prefix, run_id, files, rows as u64)
            .await
            .with_context(|| format!("cannot write {}/{prefix}", lake.url()))?;
    }
    stage(
        run,
        "write",
        rows_written,
        clock,
        format!("run={run_id}: {}", written.join(", ")),
    );
    Ok((aggregates, top))
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

pub async fn print_runs(serving: &ServingDb, limit: u64, json: bool) -> Result<()> {
    let runs = serving.batch_runs(limit).await?;
    if json {
        for run in &runs {
            println!("{}", serde_json::to_string(run)?);
        }
        return Ok(());
    }
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
        for stage in &run.stages {
            println!(
                "    {:<13} {:>11} rows {:>9} ms  {}",
                stage.name, stage.rows, stage.ms, stage.detail
            );
        }
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
