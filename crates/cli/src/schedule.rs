//! The seed's daily DAG role inside the long-running process: with
//! `batch.schedule` set, `up` and `serve` run the batch (every date, the
//! configured engine) at each time the cron expression names, in UTC. Runs
//! never overlap: the next time is computed after a run ends, so a run that
//! takes longer than the interval skips the times it covered.

use anyhow::{Context, Result};
use movierec_config::Config;
use movierec_store::{RatingStore, ServingDb};
use std::str::FromStr;
use std::sync::Arc;

/// `batch.schedule` parsed: 5 fields (minute hour day month weekday), or 6
/// with seconds first.
pub fn parse(expression: &str) -> Result<croner::Cron> {
    croner::Cron::from_str(expression).with_context(|| {
        format!(
            "batch.schedule {expression:?} is not a cron expression: expected 5 fields \
             (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for 02:00 UTC daily) \
             or 6 with seconds first"
        )
    })
}

/// Starts the scheduler when `batch.schedule` is set; the task runs until aborted.
pub fn start(
    config: &Config,
    store: Option<Arc<dyn RatingStore>>,
    serving: &ServingDb,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(expression) = config.batch.schedule.clone() else {
        return Ok(None);
    };
    let cron = parse(&expression)?;
    let (config, serving) = (config.clone(), serving.clone());
    Ok(Some(tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let next = match cron.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(
                        "batch.schedule {expression:?}: no next time ({error}); the scheduler stops"
                    );
                    return;
                }
            };
            tracing::info!("next scheduled batch at {}", next.to_rfc3339());
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match crate::batch::run_batch(
                &config,
                &crate::batch::Selection::All,
                &config.batch.engine.into(),
                store.as_deref(),
                &serving,
            )
            .await
            {
                Ok(run) => tracing::info!(
                    "scheduled batch succeeded: {} ratings, top {} published in {} ms",
                    run.ratings,
                    run.ranked,
                    run.duration_ms
                ),
                // Recorded in batch runs too; the next time tries again.
                Err(error) => {
                    tracing::error!("scheduled batch failed: {}", crate::describe(&error))
                }
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_expressions_parse_and_bad_ones_are_named() {
        let daily = parse("0 2 * * *").unwrap();
        let from = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            daily
                .find_next_occurrence(&from, false)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T02:00:00+00:00"
        );
        let every_5s = parse("*/5 * * * * *").unwrap();
        assert_eq!(
            every_5s
                .find_next_occurrence(&from, false)
                .unwrap()
                .to_rfc3339(),
            "2026-11-30T09:00:05+00:00"
        );
        let error = format!("{:#}", parse("every day").unwrap_err());
        assert!(
            error.contains("batch.schedule \"every day\"") && error.contains("0 2 * * *"),
            "{error}"
        );
    }
}
