use anyhow::{Context, Result};
use async_trait::async_trait;
use movierec_config::Config;
use movierec_core::RatingEvent;
use movierec_kafka::{ConsumerOptions, EventProducer, IngestStatus};
use movierec_server::{AppState, DependencyProbe, RatingIntake, StorageProbe, StoreIntake};
use movierec_store::{EventSink, RatingStore, ServingDb, SqliteRatingStore};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// `/health`'s view of the embedded store.
struct SqliteProbe {
    store: SqliteRatingStore,
}

#[async_trait]
impl StorageProbe for SqliteProbe {
    fn mode(&self) -> &'static str {
        "sqlite"
    }

    async fn check(&self) -> Result<Value, (Value, String)> {
        let path = self.store.path().display().to_string();
        match self.store.rating_count().await {
            Ok(ratings) => Ok(
                json!({"mode": "sqlite", "sqlite_path": path, "status": "ok", "ratings": ratings}),
            ),
            Err(error) => Err((
                json!({"mode": "sqlite", "sqlite_path": path, "status": "unreachable", "error": error.to_string()}),
                format!("sqlite store {path}: {error}"),
            )),
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// With Kafka configured, posted ratings are produced to the events topic.
struct KafkaIntake {
    producer: EventProducer,
}

#[async_trait]
impl RatingIntake for KafkaIntake {
    fn queues(&self) -> bool {
        true
    }

    async fn submit(&self, event: &RatingEvent, payload: &[u8]) -> Result<Value, String> {
        let (partition, offset) = self
            .producer
            .send_event(event.user_id, payload)
            .await
            .map_err(|e| e.to_string())?;
        Ok(
            json!({"status": "queued", "topic": self.producer.topic(), "partition": partition, "offset": offset}),
        )
    }
}

/// `/health`'s `kafka` section: the broker answers, and the consumer's lag.
struct KafkaProbe {
    producer: EventProducer,
    bootstrap: String,
    status: Arc<IngestStatus>,
}

#[async_trait]
impl DependencyProbe for KafkaProbe {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn check(&self) -> Result<Value, (Value, String)> {
        let mut info =
            json!({"bootstrap_servers": self.bootstrap, "consumer": self.status.to_json()});
        match self.producer.check().await {
            Ok(()) => {
                info["status"] = json!("connected");
                Ok(info)
            }
            Err(error) => {
                info["status"] = json!("unreachable");
                info["error"] = json!(error.to_string());
                Err((info, format!("kafka: {error}")))
            }
        }
    }
}

/// `/health`'s view of S3 and DynamoDB in aws mode.
struct AwsProbe {
    aws: movierec_aws::Aws,
}

#[async_trait]
impl StorageProbe for AwsProbe {
    fn mode(&self) -> &'static str {
        "aws"
    }

    async fn check(&self) -> Result<Value, (Value, String)> {
        self.aws.check().await
    }
}

/// aws mode writes S3 and DynamoDB from the Kafka consumer only: without
/// Kafka, say so instead of writing somewhere else.
struct KafkaRequiredIntake;

#[async_trait]
impl RatingIntake for KafkaRequiredIntake {
    fn queues(&self) -> bool {
        false
    }

    async fn submit(&self, _event: &RatingEvent, _payload: &[u8]) -> Result<Value, String> {
        Err(
            "storage_mode \"aws\" takes ratings through Kafka (the consumer writes S3 and \
             DynamoDB): set kafka.enabled: true"
                .into(),
        )
    }
}

/// `serve` in aws mode: the API over the serving database, `/health`
/// checking the bucket and the feature tables.
pub async fn serve_aws(config: &Config) -> Result<()> {
    let aws = movierec_aws::Aws::connect(&config.aws).await?;
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    let sink = || -> Result<Arc<dyn EventSink>> { Ok(Arc::new(aws_sink(config, &aws)?)) };
    run_server(
        config,
        &serving,
        StorageSide {
            storage: Arc::new(AwsProbe { aws: aws.clone() }),
            direct: Arc::new(KafkaRequiredIntake),
            batch_store: None,
            ratings: Arc::new(crate::personalize::DynamoRatings(aws.feature_sink())),
            activity: None,
        },
        sink,
    )
    .await?;
    serving.close().await;
    Ok(())
}

/// The consumer's sink in aws mode: the S3 bronze layer (through the lake)
/// and the DynamoDB features.
pub fn aws_sink(config: &Config, aws: &movierec_aws::Aws) -> Result<movierec_aws::AwsSink> {
    let lake = movierec_lake::Lake::open(&format!("s3://{}", config.aws.s3.bucket), &config.aws)?;
    let tables = &config.aws.dynamodb;
    tracing::info!(
        "storage_mode aws: raw events to {}/{}, features to DynamoDB {} and {} (ratings in {})",
        lake.url(),
        config.aws.s3.bronze_prefix,
        tables.user_features_table,
        tables.movie_features_table,
        tables.ratings_table
    );
    Ok(movierec_aws::AwsSink::new(
        movierec_aws::BronzeSink::new(lake, &config.aws.s3.bronze_prefix),
        aws.feature_sink(),
    ))
}

async fn bind(config: &Config) -> Result<tokio::net::TcpListener> {
    let address = format!("{}:{}", config.serving.host, config.serving.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {address} (is another server using the port? set serving.port)"
            )
        })?;
    tracing::info!(
        "serving on http://{address} (storage_mode {}; try /health, /api/recommendations/top)",
        config.storage_mode.as_str()
    );
    Ok(listener)
}

/// Installs the Prometheus recorder once per process; `/metrics` renders it.
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| tracing::warn!("metrics disabled: {e}"))
                .ok()
        })
        .clone()
}

/// Where posted ratings go, and what `/health` checks beyond storage.
type Wiring = (Arc<dyn RatingIntake>, Vec<Arc<dyn DependencyProbe>>);

/// The consumer running beside the server, and how to stop it.
struct Streaming {
    stop: tokio::sync::watch::Sender<bool>,
    consumer: tokio::task::JoinHandle<movierec_kafka::Result<movierec_kafka::ConsumeSummary>>,
}

impl Streaming {
    /// With Kafka configured: posted ratings go to Kafka, a consumer writes
    /// them to `sink`, and `/health` reports both.
    fn start(config: &Config, sink: Arc<dyn movierec_store::EventSink>) -> Result<(Self, Wiring)> {
        let producer = EventProducer::new(&config.kafka)?;
        let status = Arc::new(IngestStatus::default());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let kafka = config.kafka.clone();
        let task_status = status.clone();
        let consumer = tokio::spawn(async move {
            movierec_kafka::run_consumer(
                &kafka,
                sink,
                task_status,
                ConsumerOptions::default(),
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )
            .await
        });
        let intake = Arc::new(KafkaIntake {
            producer: producer.clone(),
        });
        let probe = Arc::new(KafkaProbe {
            producer,
            bootstrap: config.kafka.bootstrap_servers.clone(),
            status,
        });
        Ok((Self { stop, consumer }, (intake, vec![probe])))
    }

    /// Stops the consumer (it writes the batch in hand first).
    async fn stop(self) {
        let _ = self.stop.send(true);
        match self.consumer.await {
            Ok(Ok(summary)) => tracing::info!(
                "consumer stopped after {} events ({} applied, {} dead-lettered)",
                summary.consumed,
                summary.applied,
                summary.dead_lettered
            ),
            Ok(Err(error)) => tracing::error!("the consumer failed: {error}"),
            Err(error) => tracing::error!("the consumer task failed: {error}"),
        }
    }
}

/// What differs between the storage modes, for the server.
struct StorageSide {
    storage: Arc<dyn StorageProbe>,
    /// Takes posted ratings when Kafka is off.
    direct: Arc<dyn RatingIntake>,
    /// What the batch reads besides bronze (the embedded store).
    batch_store: Option<Arc<dyn RatingStore>>,
    ratings: Arc<dyn movierec_server::UserRatings>,
    activity: Option<Arc<dyn movierec_server::RatingActivity>>,
}

/// The API until a shutdown signal, with the Kafka consumer writing to the
/// sink `sink` makes when Kafka is enabled (posted ratings then go through Kafka), else
/// `side.direct` taking posted ratings.
async fn run_server(
    config: &Config,
    serving: &ServingDb,
    side: StorageSide,
    sink: impl FnOnce() -> Result<Arc<dyn EventSink>>,
) -> Result<()> {
    let StorageSide {
        storage,
        direct,
        batch_store,
        ratings,
        activity,
    } = side;
    if let Some(expression) = &config.batch.schedule {
        crate::schedule::parse(expression)?;
    }
    let listener = bind(config).await?;
    // Before the consumer starts: metrics recorded earlier would be lost.
    let metrics = metrics_handle();
    let mut streaming = None;
    let (intake, dependencies): Wiring = if config.kafka.enabled {
        let (started, wiring) = Streaming::start(config, sink()?)?;
        streaming = Some(started);
        wiring
    } else {
        (direct, Vec::new())
    };
    let state = AppState {
        serving_url: serving.display_url(),
        serving: Arc::new(serving.clone()),
        storage,
        intake,
        dependencies,
        metrics,
        ratings: Some(ratings),
        personalizer: if config.models.enabled {
            let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
            Some(crate::personalize::FoldIn::start(lake, config.aws.s3.gold_prefix.clone()).await)
        } else {
            None
        },
        accounts: Arc::new(serving.clone()),
        web: movierec_server::WebSettings {
            secure_cookies: config.serving.secure_cookies,
            session_ttl: std::time::Duration::from_secs(config.serving.session_hours * 3600),
            open_rating_api: config.serving.open_rating_api,
        },
        operations: Some(Arc::new(crate::operations::PlatformOperations {
            config: config.clone(),
            store: batch_store.clone(),
            serving: serving.clone(),
            running: Default::default(),
        })),
        activity,
        limiter: Arc::new(movierec_server::LoginLimiter::new(
            std::time::Duration::from_secs(15 * 60),
            config.serving.login_attempts as usize,
            config.serving.login_attempts as usize * 4,
        )),
        web_cache: Default::default(),
    };
    let scheduler = crate::schedule::start(config, batch_store, serving)?;
    let limits = movierec_server::ServerLimits {
        header_timeout: std::time::Duration::from_secs(config.serving.header_timeout_s),
        request_timeout: std::time::Duration::from_secs(config.serving.request_timeout_s),
        max_body_bytes: config.serving.max_body_bytes,
    };
    let served = movierec_server::serve(listener, state, limits, shutdown_signal()).await;
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    if let Some(streaming) = streaming {
        streaming.stop().await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn serve_with(config: &Config, store: SqliteRatingStore, serving: ServingDb) -> Result<()> {
    run_server(
        config,
        &serving,
        StorageSide {
            storage: Arc::new(SqliteProbe {
                store: store.clone(),
            }),
            direct: Arc::new(StoreIntake {
                store: Arc::new(store.clone()),
            }),
            batch_store: Some(Arc::new(store.clone())),
            ratings: Arc::new(crate::personalize::StoreRatings(store.clone())),
            activity: Some(Arc::new(crate::operations::StoreActivity::new(
                store.clone(),
            ))),
        },
        || Ok(Arc::new(store.clone())),
    )
    .await?;
    serving.close().await;
    store.close().await;
    Ok(())
}

pub async fn serve(config: &Config) -> Result<()> {
    let store = crate::open_rating_store(config).await?;
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    serve_with(config, store, serving).await
}

/// The synthetic sample `up` uses on a first start, made once under data.dir.
async fn sample_data(config: &Config) -> Result<std::path::PathBuf> {
    let sample = config.data.dir.join("sample");
    if !sample.join("ratings.csv").exists() {
        tracing::info!(
            "first start: generating synthetic sample data in {}",
            sample.display()
        );
        let params = movierec_datasets::synth::SynthParams {
            ratings: config.data.sample_ratings,
            users: config.data.sample_users,
            movies: config.data.sample_movies,
            seed: config.data.sample_seed,
        };
        let out = sample.clone();
        tokio::task::spawn_blocking(move || {
            movierec_datasets::synth::generate(&params, &out, true)
        })
        .await??;
    }
    Ok(sample)
}

/// `up` in aws mode: the bucket and tables (setup-aws, idempotent), data
/// into the S3 lake (the given MovieLens folder, or the synthetic sample on
/// a first start, when the bronze layer is empty), the batch, then `serve`.
pub async fn up_aws(config: &Config, movielens: Option<&Path>) -> Result<()> {
    let aws = movierec_aws::Aws::connect(&config.aws).await?;
    for step in aws.setup(false).await? {
        tracing::info!("setup-aws: {step}");
    }
    let lake = movierec_lake::Lake::open(&config.lake_root(), &config.aws)?;
    let bronze = format!("{}/", config.aws.s3.bronze_prefix.trim_matches('/'));
    let data = match movielens {
        Some(dir) => Some(dir.to_path_buf()),
        None if lake.live_files(&bronze).await?.is_empty() => Some(sample_data(config).await?),
        None => None,
    };
    if let Some(dir) = data {
        crate::import::import_movielens_to_lake(config, &dir, false)
            .await?
            .print();
    }
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    let run = crate::batch::run_batch(
        config,
        &crate::batch::Selection::All,
        &crate::batch::Runner::Embedded,
        None,
        &serving,
    )
    .await?;
    crate::batch::print_run(&run);
    serving.close().await;
    serve_aws(config).await
}

/// `up`: data on first start, the batch, then the server until Ctrl-C.
pub async fn up(config: &Config, movielens: Option<&Path>) -> Result<()> {
    let store = crate::open_rating_store(config).await?;
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    if let Some(dir) = movielens {
        tracing::info!("importing MovieLens from {}", dir.display());
        crate::import::import_movielens(&store, dir, false)
            .await?
            .print();
    } else if store.rating_count().await? == 0 {
        let sample = sample_data(config).await?;
        crate::import::import_movielens(&store, &sample, false)
            .await?
            .print();
    }
    let run = crate::batch::run_batch(
        config,
        &crate::batch::Selection::All,
        &crate::batch::Runner::Embedded,
        Some(&store),
        &serving,
    )
    .await?;
    crate::batch::print_run(&run);
    serve_with(config, store, serving).await
}
