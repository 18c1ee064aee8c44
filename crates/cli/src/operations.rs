//! What the web application's admin area and charts need from the rest of
//! the platform: running a batch, the dead-letter topic, model versions,
//! and rating counts from the embedded store.

use async_trait::async_trait;
use movierec_config::Config;
use movierec_server::{DeadLetterView, Operations, RatingActivity};
use movierec_store::{ModelRecord, RatingStore, ServingDb, SqliteRatingStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct PlatformOperations {
    pub config: Config,
    pub store: Option<Arc<dyn RatingStore>>,
    pub serving: ServingDb,
    pub running: Arc<AtomicBool>,
}

impl PlatformOperations {
    /// The whole dead-letter topic (rdkafka's reader blocks: off the runtime).
    async fn read_dead_letters(&self) -> Result<Vec<movierec_kafka::dlq::DeadLetter>, String> {
        let kafka = self.config.kafka.clone();
        tokio::task::spawn_blocking(move || movierec_kafka::dlq::read_all(&kafka))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the dead-letter topic: {e}"))
    }
}

#[async_trait]
impl Operations for PlatformOperations {
    async fn run_batch(&self) -> Result<String, String> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(
                "a batch started from this server is still running: wait for it to end".into(),
            );
        }
        let (config, store, serving, running) = (
            self.config.clone(),
            self.store.clone(),
            self.serving.clone(),
            self.running.clone(),
        );
        tokio::spawn(async move {
            let result = crate::batch::run_batch(
                &config,
                &crate::batch::Selection::All,
                &config.batch.engine.into(),
                store.as_deref(),
                &serving,
            )
            .await;
            match result {
                Ok(run) => tracing::info!(
                    "batch run from the admin page succeeded: {} ratings, top {} in {} ms",
                    run.ratings,
                    run.ranked,
                    run.duration_ms
                ),
                // Recorded in the batch runs too, where the page shows it.
                Err(error) => tracing::error!(
                    "batch run from the admin page failed: {}",
                    crate::describe(&error)
                ),
            }
            running.store(false, Ordering::SeqCst);
        });
        Ok(format!("batch started ({:?} engine)", self.config.batch.engine).to_lowercase())
    }

    fn batch_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterView>, String> {
        if !self.config.kafka.enabled {
            return Err(
                "Kafka is not enabled (kafka.enabled: false): ratings are validated when posted, so nothing is dead-lettered"
                    .into(),
            );
        }
        let letters = self.read_dead_letters().await?;
        Ok(letters
            .into_iter()
            .rev()
            .take(limit)
            .map(|l| DeadLetterView {
                source: format!(
                    "{}[{}]@{}",
                    l.source_topic,
                    l.source_partition
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    l.source_offset.map(|o| o.to_string()).unwrap_or_default()
                ),
                failed_at: l.failed_at,
                reason: l.reason,
                error: l.error,
                payload: l.payload,
            })
            .collect())
    }

    async fn replay_dead_letters(&self) -> Result<(u64, u64), String> {
        if !self.config.kafka.enabled {
            return Err("Kafka is not enabled: there are no dead letters to replay".into());
        }
        let letters = self.read_dead_letters().await?;
        let summary =
            movierec_kafka::dlq::replay(&self.config.kafka, &letters, None, None, false, false)
                .await
                .map_err(|e| format!("replay failed: {e}"))?;
        Ok((summary.resent, summary.still_invalid))
    }

    async fn model_versions(&self, limit: u64) -> Result<Vec<ModelRecord>, String> {
        self.serving
            .models(None, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

/// How long monthly counts are served before they are counted again.
const MONTHS_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// How long a stats page waits for a count in progress before it says so.
const MONTHS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

type Months = Vec<(String, u64)>;

#[derive(Default)]
struct MonthCounts {
    value: Option<(std::time::Instant, Months)>,
    counting: bool,
    error: Option<String>,
}

/// What a page sees of the count: the last result, whether one is running,
/// and why the last one failed.
struct MonthsNow {
    value: Option<Months>,
    counting: bool,
    error: Option<String>,
}

/// Charts from the embedded rating store. Counting every rating by month
/// is a full scan (~40 s at 25M ratings), so it runs in the background and
/// the page shows the last count, at most ten minutes old.
pub struct StoreActivity {
    store: SqliteRatingStore,
    months: Arc<std::sync::Mutex<MonthCounts>>,
}

impl StoreActivity {
    pub fn new(store: SqliteRatingStore) -> Self {
        Self {
            store,
            months: Default::default(),
        }
    }

    fn cached(&self) -> MonthsNow {
        let mut months = self.months.lock().unwrap_or_else(|e| e.into_inner());
        let stale = months
            .value
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > MONTHS_TTL);
        if stale && !months.counting {
            months.counting = true;
            let (store, cell) = (self.store.clone(), self.months.clone());
            tokio::spawn(async move {
                let counted = store.ratings_per_month().await;
                let mut months = cell.lock().unwrap_or_else(|e| e.into_inner());
                months.counting = false;
                match counted {
                    Ok(value) => {
                        months.value = Some((std::time::Instant::now(), value));
                        months.error = None;
                    }
                    Err(error) => {
                        months.error = Some(format!("cannot count ratings by month: {error}"))
                    }
                }
            });
        }
        MonthsNow {
            value: months.value.as_ref().map(|(_, v)| v.clone()),
            counting: months.counting,
            error: months.error.clone(),
        }
    }
}

#[async_trait]
impl RatingActivity for StoreActivity {
    async fn ratings_per_month(&self) -> Result<Vec<(String, u64)>, String> {
        let started = std::time::Instant::now();
        loop {
            match self.cached() {
                MonthsNow {
                    value: Some(value), ..
                } => return Ok(value),
                MonthsNow {
                    counting: false,
                    error: Some(error),
                    ..
                } => return Err(error),
                _ if started.elapsed() > MONTHS_WAIT => {
                    return Err(
                        "Counting ratings by month in the background: reload in a minute.".into(),
                    );
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    async fn movie_distribution(&self, movie_id: u64) -> Option<Vec<(f64, u64)>> {
        self.store
            .movie_rating_counts(movie_id)
            .await
            .map_err(|e| tracing::warn!("rating distribution of movie {movie_id}: {e}"))
            .ok()
    }
}
