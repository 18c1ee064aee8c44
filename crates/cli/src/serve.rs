use anyhow::{Context, Result};
use async_trait::async_trait;
use movierec_config::Config;
use movierec_server::{AppState, StorageProbe};
use movierec_store::{RatingStore, ServingDb, SqliteRatingStore};
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

async fn shutdown_signal() {
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

async fn serve_with(config: &Config, store: SqliteRatingStore, serving: ServingDb) -> Result<()> {
    let address = format!("{}:{}", config.serving.host, config.serving.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {address} (is another server using the port? set serving.port)"
            )
        })?;
    let state = AppState {
        serving_url: serving.display_url(),
        serving: Arc::new(serving.clone()),
        storage: Arc::new(SqliteProbe {
            store: store.clone(),
        }),
    };
    tracing::info!("serving on http://{address} (try /health, /api/recommendations/top)");
    movierec_server::serve(listener, state, shutdown_signal()).await?;
    serving.close().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn serve(config: &Config) -> Result<()> {
    let store = SqliteRatingStore::open(&config.sqlite.path).await?;
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    serve_with(config, store, serving).await
}

/// `up`: data on first start, the batch, then the server until Ctrl-C.
pub async fn up(config: &Config, movielens: Option<&Path>) -> Result<()> {
    let store = SqliteRatingStore::open(&config.sqlite.path).await?;
    let serving = ServingDb::connect(&config.serving.database_url).await?;
    if let Some(dir) = movielens {
        tracing::info!("importing MovieLens from {}", dir.display());
        crate::import::import_movielens(&store, dir, false)
            .await?
            .print();
    } else if store.rating_count().await? == 0 {
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
        crate::import::import_movielens(&store, &sample, false)
            .await?
            .print();
    }
    let run = crate::batch::run_embedded(config, &store, &serving).await?;
    crate::batch::print_run(&run);
    serve_with(config, store, serving).await
}
