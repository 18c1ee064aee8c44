//! `batch run --engine spark`: the same pipeline as the embedded engine, run
//! by `jobs/spark/lakehouse.py` through spark-submit (`batch.spark.*`:
//! `local[*]` by default, `yarn` on EMR). movierec plans the inputs (live
//! bronze files, the previous silver ratings, the rating store and the
//! catalogue staged as Parquet), Spark writes each dataset's new version, and
//! movierec switches the manifests and publishes, so both engines leave the
//! same lake and the same serving tables.

use crate::batch::{Layout, Selection, selected, stage, store_records};
use anyhow::{Context, Result, bail};
use movierec_batch::Aggregates;
use movierec_batch::parquet_tables as tables;
use movierec_config::Config;
use movierec_core::{Movie, TopN};
use movierec_lake::Lake;
use movierec_store::{BatchRun, RatingStore};
use serde_json::json;
use std::time::Instant;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    config: &Config,
    lake: &Lake,
    selection: &Selection,
    store: Option<&dyn RatingStore>,
    catalogue: &[Movie],
    run_id: &str,
    days: i32,
    run: &mut BatchRun,
) -> Result<(Aggregates, TopN)> {
    let layout = Layout::new(config);
    let staging = format!("staging/run={run_id}");
    let mut inputs = Vec::new();
    let clock = Instant::now();

    // Where Spark reads and writes: the lake itself, or (staged) a local
    // folder holding the same keys, copied in before and out after.
    let staged_dir = if config.batch.spark.staged(lake.url()) {
        Some(
            tempfile::Builder::new()
                .prefix("movierec-spark-")
                .tempdir()?,
        )
    } else {
        None
    };
    let work = match &staged_dir {
        Some(dir) => Lake::open(&dir.path().display().to_string(), &config.aws)?,
        None => lake.clone(),
    };
    let mut staged_bytes = 0u64;

    // Ratings inputs, oldest first, as the embedded engine orders them.
    let mut ratings = Vec::new();
    if *selection != Selection::All
        && let Some(manifest) = lake.current_dataset(&layout.ratings).await?
    {
        inputs.push(format!("silver ratings of run {}", manifest.run_id));
        for key in &manifest.files {
            if staged_dir.is_some() {
                let bytes = lake
                    .get(key)
                    .await?
                    .with_context(|| format!("{} lists {key}, which is gone", manifest.run_id))?;
                staged_bytes += bytes.len() as u64;
                work.put(key, bytes).await?;
            }
            ratings.push(work.location(key));
        }
    }
    if let Some(store) = store {
        let mut seq = 0;
        let stored = store_records(store, &mut seq).await?;
        inputs.push(format!("rating store ({} ratings)", stored.len()));
        let key = format!("{staging}/store-ratings.parquet");
        work.put(&key, tables::ratings_table(&stored)?).await?;
        ratings.push(work.location(&key));
    }
    let bronze_prefix = format!("{}/", config.aws.s3.bronze_prefix.trim_matches('/'));
    let wanted = |key: &str| selected(&bronze_prefix, selection, key);
    let bronze: Vec<String> = if staged_dir.is_some() {
        // A consistent read of the live files, as the embedded engine does.
        let mut locations = Vec::new();
        for (key, bytes) in lake.read_live(&bronze_prefix, &wanted).await? {
            staged_bytes += bytes.len() as u64;
            work.put(&key, bytes).await?;
            locations.push(work.location(&key));
        }
        locations
    } else {
        lake.live_files(&bronze_prefix)
            .await?
            .into_iter()
            .filter(|e| wanted(&e.key))
            .map(|e| lake.location(&e.key))
            .collect()
    };
    inputs.push(format!(
        "bronze {} ({} objects)",
        selection.describe(),
        bronze.len()
    ));
    let catalogue_key = format!("{staging}/catalogue.parquet");
    work.put(&catalogue_key, tables::catalogue_table(catalogue)?)
        .await?;
    run.source = format!("lake {} (spark): {}", lake.url(), inputs.join(", "));
    stage(
        run,
        "plan",
        bronze.len() as u64 + ratings.len() as u64,
        clock,
        match &staged_dir {
            Some(dir) => format!(
                "{}; staged {staged_bytes} bytes from {} to {}",
                inputs.join(", "),
                lake.url(),
                dir.path().display()
            ),
            None => inputs.join(", "),
        },
    );

    let output = |prefix: &str| work.location(&format!("{prefix}/run={run_id}"));
    let snapshot = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
        + chrono::Days::new(days as u64);
    let plan = json!({
        "ratings": ratings,
        "bronze": bronze,
        "catalogue": work.location(&catalogue_key),
        "outputs": {
            "ratings": output(&layout.ratings),
            "user_features": output(&layout.user_features),
            "movie_features": output(&layout.movie_features),
            "top_movies": output(&layout.top_movies),
        },
        "min_ratings": config.batch.min_ratings,
        "top_n": config.batch.top_n,
        "snapshot_date": snapshot.format("%Y-%m-%d").to_string(),
    });
    let plan_path = std::env::temp_dir().join(format!("movierec-spark-plan-{run_id}.json"));
    std::fs::write(&plan_path, serde_json::to_vec_pretty(&plan)?)
        .with_context(|| format!("cannot write {}", plan_path.display()))?;

    let clock = Instant::now();
    let summary = submit(config, &plan_path).await;
    let _ = std::fs::remove_file(&plan_path);
    for key in [format!("{staging}/store-ratings.parquet"), catalogue_key] {
        work.delete(&key).await?;
    }
    let summary = summary?;
    let count = |name: &str| summary[name].as_u64().unwrap_or(0);
    stage(
        run,
        "spark-submit",
        count("records_read"),
        clock,
        format!(
            "--master {}: {} ratings, {} users, {} movies, top {}",
            config.batch.spark.master,
            count("ratings"),
            count("users"),
            count("movies"),
            count("ranked")
        ),
    );

    let clock = Instant::now();
    if staged_dir.is_some() {
        let mut copied = 0u64;
        for prefix in [
            &layout.ratings,
            &layout.user_features,
            &layout.movie_features,
            &layout.top_movies,
        ] {
            for entry in work.list(&format!("{prefix}/run={run_id}/")).await? {
                if entry.key.ends_with(".parquet") {
                    let bytes = work.get(&entry.key).await?.unwrap_or_default();
                    copied += bytes.len() as u64;
                    lake.put(&entry.key, bytes).await?;
                }
            }
        }
        tracing::info!("copied {copied} bytes of Spark output to {}", lake.url());
    }

    // Switch each dataset to Spark's files; read back what is published
    // (features and the top list; the ratings stay in the lake).
    let mut read_back = Vec::new();
    for (prefix, rows, publish) in [
        (&layout.ratings, count("ratings"), false),
        (&layout.user_features, count("users"), true),
        (&layout.movie_features, count("movies"), true),
        (&layout.top_movies, count("ranked"), true),
    ] {
        let files: Vec<String> = lake
            .list(&format!("{prefix}/run={run_id}/"))
            .await?
            .into_iter()
            .map(|e| e.key)
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        if files.is_empty() {
            bail!(
                "spark wrote no Parquet file under {}/{prefix}/run={run_id}/",
                lake.url()
            );
        }
        if publish {
            let mut bytes = Vec::new();
            for key in &files {
                bytes.push(lake.get(key).await?.unwrap_or_default());
            }
            read_back.push(bytes);
        }
        lake.commit_dataset(prefix, run_id, files, rows).await?;
    }
    stage(
        run,
        "commit",
        count("ratings") + count("users") + count("movies") + count("ranked"),
        clock,
        format!("run={run_id}: silver ratings, user and movie features, gold top movies"),
    );
    let mut histogram = [0u64; 11];
    if let Some(counts) = summary["histogram"].as_object() {
        for (half_stars, count) in counts {
            if let Ok(h) = half_stars.parse::<usize>()
                && h < histogram.len()
            {
                histogram[h] = count.as_u64().unwrap_or(0);
            }
        }
    }
    let features = |files: &[bytes::Bytes], key: &'static str| -> Result<_> {
        let mut all = Vec::new();
        for file in files {
            all.extend(tables::read_features(file.clone(), key)?);
        }
        all.sort_unstable_by_key(|(id, _)| *id);
        Ok(all)
    };
    let users = features(&read_back[0], "user_id")?;
    let movies = features(&read_back[1], "movie_id")?;
    let mut top_movies = Vec::new();
    let mut global_mean = summary["global_mean"].as_f64().unwrap_or(0.0);
    for file in &read_back[2] {
        let (rows, c) = tables::read_top(file.clone())?;
        top_movies.extend(rows);
        global_mean = c;
    }
    let eligible = movies
        .iter()
        .filter(|(_, acc)| acc.count >= config.batch.min_ratings)
        .count();
    let aggregates = Aggregates {
        users,
        movies,
        histogram,
        records_read: count("records_read"),
        superseded: count("records_read").saturating_sub(count("ratings")),
    };
    let top = TopN {
        global_mean,
        eligible,
        movies: top_movies,
    };
    Ok((aggregates, top))
}

/// Runs spark-submit and returns the job's JSON summary line.
async fn submit(config: &Config, plan: &std::path::Path) -> Result<serde_json::Value> {
    let spark = &config.batch.spark;
    if !spark.job.is_file() {
        bail!(
            "the Spark job {} is not there: run from the movierec checkout, or set \
             batch.spark.job to the path of jobs/spark/lakehouse.py",
            spark.job.display()
        );
    }
    let mut command = tokio::process::Command::new(&spark.submit);
    command.arg("--master").arg(&spark.master);
    command.args(["--conf", "spark.ui.enabled=false"]);
    for (key, value) in &spark.conf {
        command.arg("--conf").arg(format!("{key}={value}"));
    }
    command.arg(&spark.job).arg("--plan").arg(plan);
    // Loopback unless told otherwise: the driver's UI and RPC listen on all
    // interfaces by default.
    if std::env::var_os("SPARK_LOCAL_IP").is_none() {
        command.env("SPARK_LOCAL_IP", "127.0.0.1");
    }
    tracing::info!(
        "spark-submit --master {} {}",
        spark.master,
        spark.job.display()
    );
    let output = command.output().await.with_context(|| {
        format!(
            "cannot run `{}`: install Spark (pip install pyspark==4.3.0 puts spark-submit on PATH) \
             or set batch.spark.submit",
            spark.submit
        )
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        if stderr.contains("S3AFileSystem") {
            bail!(
                "spark-submit failed ({}): this Spark has no S3A connector (hadoop-aws) for the \
                 s3a:// lake. Set batch.spark.lake_access to \"staged\" (movierec copies the \
                 inputs to a local folder and the outputs back), or add the connector, e.g. \
                 batch.spark.conf.\"spark.jars.packages\": \"org.apache.hadoop:hadoop-aws:3.4.1\"\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        bail!(
            "spark-submit failed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the Spark job printed no summary line")?;
    serde_json::from_str(line).context("the Spark job's summary is not JSON")
}
