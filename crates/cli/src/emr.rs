//! `emr submit`: the Spark engine's job as a step of a running EMR cluster.
//! movierec plans the run as for `--engine spark`, puts the job and its plan
//! next to the run's staging files in the S3 lake, adds a
//! `spark-submit --deploy-mode cluster` step (command-runner.jar), waits for
//! it, reads the summary the job leaves beside the plan, and then commits
//! and publishes the datasets exactly as a local Spark run does.

use anyhow::{Context, Result, bail};
use movierec_config::Config;
use movierec_lake::Lake;
use movierec_store::BatchRun;
use std::time::{Duration, Instant};

/// The step's arguments for command-runner.jar.
pub fn step_args(config: &Config, job: &str, plan: &str) -> Vec<String> {
    let mut args: Vec<String> = ["spark-submit", "--deploy-mode", "cluster"]
        .map(String::from)
        .to_vec();
    for (key, value) in &config.batch.spark.conf {
        args.push("--conf".into());
        args.push(format!("{key}={value}"));
    }
    args.extend([job.to_string(), "--plan".into(), plan.to_string()]);
    args
}

/// Where an EMR cluster finds `key`: EMRFS reads `s3://`, not `s3a://`.
pub(crate) fn s3_location(lake: &Lake, key: &str) -> String {
    let location = lake.location(key);
    match location.strip_prefix("s3a://") {
        Some(rest) => format!("s3://{rest}"),
        None => location,
    }
}

/// Submits the planned job as a step, waits up to `timeout`, and returns
/// the job's summary.
pub async fn run_step(
    config: &Config,
    lake: &Lake,
    cluster_id: &str,
    timeout: Duration,
    run_id: &str,
    plan: &serde_json::Value,
    run: &mut BatchRun,
) -> Result<serde_json::Value> {
    let staging = format!("staging/run={run_id}");
    let job = std::fs::read(&config.batch.spark.job).with_context(|| {
        format!(
            "cannot read the Spark job {}: run from the movierec checkout, or set \
             batch.spark.job to the path of jobs/spark/lakehouse.py",
            config.batch.spark.job.display()
        )
    })?;
    let (job_key, plan_key) = (
        format!("{staging}/lakehouse.py"),
        format!("{staging}/plan.json"),
    );
    lake.put(&job_key, job.into()).await?;
    lake.put(&plan_key, serde_json::to_vec_pretty(plan)?.into())
        .await?;
    let aws = movierec_aws::Aws::connect(&config.aws).await?;
    let args = step_args(
        config,
        &s3_location(lake, &job_key),
        &s3_location(lake, &plan_key),
    );
    let step_id = aws
        .add_step(
            cluster_id,
            &format!("movierec lakehouse run={run_id}"),
            args,
        )
        .await?;
    println!(
        "EMR step {step_id} added to cluster {cluster_id}; waiting for it (up to {timeout:?})"
    );
    run.source = format!("{} (EMR cluster {cluster_id}, step {step_id})", run.source);

    let started = Instant::now();
    let poll = (timeout / 20).clamp(Duration::from_millis(500), Duration::from_secs(15));
    let status = loop {
        let status = aws.step_status(cluster_id, &step_id).await?;
        if status.is_done() {
            break status;
        }
        if started.elapsed() >= timeout {
            bail!(
                "EMR step {step_id} on cluster {cluster_id} is still {} after {timeout:?}. It keeps \
                 running, but no dataset switches until movierec commits it: run the batch again \
                 when the cluster is free (its inputs stay under {}/{staging}/)",
                status.state,
                lake.url()
            );
        }
        tracing::info!("EMR step {step_id}: {}", status.state);
        tokio::time::sleep(poll).await;
    };
    let summary = if status.state == "COMPLETED" {
        read_summary(lake, &format!("{staging}/summary/")).await
    } else {
        Err(anyhow::anyhow!(
            "EMR step {step_id} on cluster {cluster_id} ended {}{}",
            status.state,
            status.failure.map(|f| format!(": {f}")).unwrap_or_default()
        ))
    };
    for entry in lake.list(&format!("{staging}/")).await? {
        if !entry.key.ends_with(".parquet") {
            lake.delete(&entry.key).await?;
        }
    }
    summary
}

/// The summary line the job wrote next to its plan.
pub(crate) async fn read_summary(lake: &Lake, prefix: &str) -> Result<serde_json::Value> {
    for entry in lake.list(prefix).await? {
        let name = entry.key.rsplit('/').next().unwrap_or_default();
        if name.starts_with("part-") {
            let bytes = lake.get(&entry.key).await?.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            if let Some(line) = text.lines().find(|l| l.trim_start().starts_with('{')) {
                return serde_json::from_str(line)
                    .with_context(|| format!("{}/{}: not a summary", lake.url(), entry.key));
            }
        }
    }
    bail!(
        "the EMR step completed but left no summary under {}/{prefix}",
        lake.url()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_runs_spark_submit_in_cluster_mode_with_the_configured_conf() {
        let mut config = Config::default();
        config
            .batch
            .spark
            .conf
            .insert("spark.executor.memory".into(), "8g".into());
        assert_eq!(
            step_args(&config, "s3://b/job.py", "s3://b/plan.json"),
            [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--conf",
                "spark.executor.memory=8g",
                "s3://b/job.py",
                "--plan",
                "s3://b/plan.json"
            ]
        );
    }
}
