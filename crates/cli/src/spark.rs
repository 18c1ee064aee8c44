//! `batch run --engine spark`: the same pipeline as the embedded engine, run
//! by `jobs/spark/lakehouse.py` through spark-submit (`batch.spark.*`:
//! `local[*]` by default, `yarn` on EMR). movierec plans the inputs (live
//! bronze files, the previous silver ratings, the rating store and the
//! catalogue staged as Parquet), Spark writes each dataset's new version, and
//! movierec switches the manifests and publishes, so both engines leave the
//! same lake and the same serving tables.

use crate::batch::{Layout, RunInputs, Selection, selected, stage, store_records};
use anyhow::{Context, Result, bail};
use movierec_batch::Aggregates;
use movierec_batch::parquet_tables as tables;
use movierec_config::Config;
use movierec_core::TopN;
use movierec_lake::Lake;
use movierec_store::BatchRun;
use serde_json::json;
use std::time::Instant;

/// Where the job runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// spark-submit here (`batch.spark.*`).
    Submit,
    /// A step of a running EMR cluster, waited for up to `timeout`.
    Emr {
        cluster_id: String,
        timeout: std::time::Duration,
    },
}

/// A job's inputs in place and its plan: what runs it needs.
struct Planned {
    plan: serde_json::Value,
    /// Where the job reads and writes (the lake, or a staged local copy).
    work: Lake,
    /// Keys under `work` to delete after the job.
    scratch: Vec<String>,
    staged_dir: Option<tempfile::TempDir>,
}

pub async fn run(
    inputs: RunInputs<'_>,
    run: &mut BatchRun,
    target: &Target,
) -> Result<(Aggregates, TopN)> {
    let RunInputs {
        config,
        lake,
        run_id,
        ..
    } = inputs;
    let planned = plan_job(inputs, run, target).await?;
    let clock = Instant::now();
    let summary = match target {
        Target::Submit => submit_here(config, &planned.work, run_id, &planned.plan).await,
        Target::Emr {
            cluster_id,
            timeout,
        } => {
            crate::emr::run_step(
                config,
                lake,
                cluster_id,
                *timeout,
                run_id,
                &planned.plan,
                run,
            )
            .await
        }
    };
    // A step that may still run on EMR still needs its inputs.
    if summary.is_ok() || matches!(target, Target::Submit) {
        for key in &planned.scratch {
            planned.work.delete(key).await?;
        }
    }
    let summary = summary?;
    let count = |name: &str| summary[name].as_u64().unwrap_or(0);
    stage(
        run,
        match target {
            Target::Submit => "spark-submit",
            Target::Emr { .. } => "emr-step",
        },
        count("records_read"),
        clock,
        format!(
            "{}: {} ratings, {} users, {} movies, top {}{}",
            match target {
                Target::Submit => format!("--master {}", config.batch.spark.master),
                Target::Emr { cluster_id, .. } => format!("cluster {cluster_id}"),
            },
            count("ratings"),
            count("users"),
            count("movies"),
            count("ranked"),
            summary["shuffle_partitions"]
                .as_u64()
                .map_or(String::new(), |n| format!(", {n} shuffle partitions"))
        ),
    );
    finish(config, lake, &planned, run_id, &summary, run).await
}

/// Puts the job's inputs where it reads them and writes its plan.
async fn plan_job(inputs: RunInputs<'_>, run: &mut BatchRun, target: &Target) -> Result<Planned> {
    let RunInputs {
        config,
        lake,
        selection,
        store,
        catalogue,
        run_id,
        ..
    } = inputs;
    let snapshot_date = inputs.snapshot_date();
    let layout = Layout::new(config);
    let staging = format!("staging/run={run_id}");
    let mut inputs = Vec::new();
    let clock = Instant::now();
    // EMR reads S3 through EMRFS (s3://); Hadoop's connector elsewhere (s3a://).
    let emr = matches!(target, Target::Emr { .. });
    if emr && !lake.url().starts_with("s3://") {
        bail!(
            "an EMR step reads the lake from S3, but the lake is {}: set lake.root to \
             s3://BUCKET (storage_mode aws does by default)",
            lake.url()
        );
    }
    let locate = |work: &Lake, key: &str| {
        if emr {
            crate::emr::s3_location(work, key)
        } else {
            work.location(key)
        }
    };

    // Where Spark reads and writes: the lake itself, or (staged) a local
    // folder holding the same keys, copied in before and out after.
    let staged_dir = if !emr && config.batch.spark.staged(lake.url()) {
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
            ratings.push(locate(&work, key));
        }
    }
    if let Some(store) = store {
        let mut seq = 0;
        let stored = store_records(store, &mut seq).await?;
        inputs.push(format!("rating store ({} ratings)", stored.len()));
        let key = format!("{staging}/store-ratings.parquet");
        work.put(&key, tables::ratings_table(&stored)?).await?;
        ratings.push(locate(&work, &key));
    }
    let bronze_prefix = format!("{}/", config.aws.s3.bronze_prefix.trim_matches('/'));
    let wanted = |key: &str| selected(&bronze_prefix, selection, key);
    let bronze: Vec<String> = if staged_dir.is_some() {
        // A consistent read of the live files, as the embedded engine does.
        let mut locations = Vec::new();
        for (key, bytes) in lake.read_live(&bronze_prefix, &wanted).await? {
            staged_bytes += bytes.len() as u64;
            work.put(&key, bytes).await?;
            locations.push(locate(&work, &key));
        }
        locations
    } else {
        lake.live_files(&bronze_prefix)
            .await?
            .into_iter()
            .filter(|e| wanted(&e.key))
            .map(|e| locate(lake, &e.key))
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

    let output = |prefix: &str| locate(&work, &format!("{prefix}/run={run_id}"));
    let plan = json!({
        "ratings": ratings,
        "bronze": bronze,
        "catalogue": locate(&work, &catalogue_key),
        "outputs": {
            "ratings": output(&layout.ratings),
            "user_features": output(&layout.user_features),
            "movie_features": output(&layout.movie_features),
            "top_movies": output(&layout.top_movies),
            // A URL even on local disk, so every run takes the path an EMR
            // step needs (the summary read from the lake, not from stdout).
            "summary": as_url(&locate(&work, &format!("{staging}/summary"))),
        },
        "min_ratings": config.batch.min_ratings,
        "top_n": config.batch.top_n,
        "snapshot_date": snapshot_date,
    });
    Ok(Planned {
        plan,
        work,
        scratch: vec![format!("{staging}/store-ratings.parquet"), catalogue_key],
        staged_dir,
    })
}

/// A local path as a `file://` URL; URLs as they are.
fn as_url(location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else {
        format!("file://{location}")
    }
}

/// spark-submit with the plan in a local file (given as a URL, as an EMR
/// step gets it); returns the summary the job left in `work`.
async fn submit_here(
    config: &Config,
    work: &Lake,
    run_id: &str,
    plan: &serde_json::Value,
) -> Result<serde_json::Value> {
    let plan_path = std::env::temp_dir().join(format!("movierec-spark-plan-{run_id}.json"));
    std::fs::write(&plan_path, serde_json::to_vec_pretty(plan)?)
        .with_context(|| format!("cannot write {}", plan_path.display()))?;
    let submitted = submit(config, &as_url(&plan_path.display().to_string())).await;
    let _ = std::fs::remove_file(&plan_path);
    submitted?;
    let prefix = format!("staging/run={run_id}/summary/");
    let summary = crate::emr::read_summary(work, &prefix).await;
    for entry in work.list(&prefix).await? {
        work.delete(&entry.key).await?;
    }
    summary
}

/// After the job: copies a staged run's output to the lake, switches each
/// dataset to the job's files and reads back what is published.
async fn finish(
    config: &Config,
    lake: &Lake,
    planned: &Planned,
    run_id: &str,
    summary: &serde_json::Value,
    run: &mut BatchRun,
) -> Result<(Aggregates, TopN)> {
    let layout = Layout::new(config);
    let work = &planned.work;
    let count = |name: &str| summary[name].as_u64().unwrap_or(0);
    let clock = Instant::now();
    if planned.staged_dir.is_some() {
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
async fn submit(config: &Config, plan: &str) -> Result<()> {
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
    for (key, value) in spark.submit_conf() {
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
    let output = command
        .output()
        .await
        .with_context(|| cannot_run(&spark.submit))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = stderr_tail(&stderr);
        if stderr.contains("S3AFileSystem") {
            bail!(
                "spark-submit failed ({}): this Spark has no S3A connector (hadoop-aws) for the \
                 s3a:// lake. Set batch.spark.lake_access to \"staged\" (movierec copies the \
                 inputs to a local folder and the outputs back), or add the connector, e.g. \
                 batch.spark.conf.\"spark.jars.packages\": \"org.apache.hadoop:hadoop-aws:3.4.1\"\n{}",
                output.status,
                tail
            );
        }
        bail!("spark-submit failed ({}):\n{tail}", output.status);
    }
    Ok(())
}

/// What to do when spark-submit cannot be started at all.
pub(crate) fn cannot_run(submit: &str) -> String {
    format!(
        "cannot run `{submit}`: install Spark (pip install pyspark==4.3.0 puts spark-submit on PATH) \
         or set batch.spark.submit"
    )
}

/// The last 20 lines of spark-submit's stderr, in order: where its error is.
pub(crate) fn stderr_tail(stderr: &str) -> String {
    let mut tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    tail.reverse();
    tail.join("\n")
}
