use crate::ApiError;
use crate::params::{Params, path_id};
use crate::ratings::{RatingIntake, post_rating};
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use movierec_store::{MovieSort, Page, ServingStore};
use serde_json::{Value, json};
use std::sync::Arc;

/// What `/health` reports about the storage mode (SQLite file, or S3 and
/// DynamoDB in aws mode): its description, or what failed.
#[async_trait]
pub trait StorageProbe: Send + Sync {
    fn mode(&self) -> &'static str;
    /// `Ok(info)` when healthy; `Err((info, failure))` naming what failed.
    async fn check(&self) -> Result<Value, (Value, String)>;
}

/// Another dependency `/health` checks (the Kafka broker and the consumer).
#[async_trait]
pub trait DependencyProbe: Send + Sync {
    /// The key of its section in `/health`.
    fn name(&self) -> &'static str;
    async fn check(&self) -> Result<Value, (Value, String)>;
}

#[derive(Clone)]
pub struct AppState {
    pub serving: Arc<dyn ServingStore>,
    /// Shown in `/health` (password hidden).
    pub serving_url: String,
    pub storage: Arc<dyn StorageProbe>,
    pub intake: Arc<dyn RatingIntake>,
    pub dependencies: Vec<Arc<dyn DependencyProbe>>,
    /// Renders `/metrics`; `None` answers 404 there.
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/movies", get(movies))
        .route("/api/movies/{id}", get(movie))
        .route("/api/recommendations/top", get(top))
        .route("/api/users/{id}/features", get(user_features))
        .route("/api/stats", get(stats))
        .route("/api/ratings", post(post_rating))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::not_found(
                "no such endpoint; see /api/movies, /api/recommendations/top, /api/stats, POST /api/ratings, /health, /metrics",
            )
        })
        .with_state(state)
}

type Pairs = Query<Vec<(String, String)>>;

fn paged<T: serde::Serialize>(items: Vec<T>, total: u64, page: Page) -> Json<Value> {
    Json(json!({
        "items": items,
        "page": page.page,
        "page_size": page.page_size,
        "total": total,
        "total_pages": total.div_ceil(page.page_size),
    }))
}

async fn health(State(state): State<AppState>) -> Response {
    let mut failures = Vec::new();
    let storage_info = match state.storage.check().await {
        Ok(info) => info,
        Err((info, failure)) => {
            failures.push(failure);
            info
        }
    };
    let serving = match state.serving.ping().await {
        Ok(()) => json!({"url": state.serving_url, "status": "ok"}),
        Err(error) => {
            failures.push(format!("serving database: {error}"));
            json!({"url": state.serving_url, "status": "unreachable", "error": error.to_string()})
        }
    };
    let mut dependencies = serde_json::Map::new();
    for probe in &state.dependencies {
        let info = match probe.check().await {
            Ok(info) => info,
            Err((info, failure)) => {
                failures.push(failure);
                info
            }
        };
        dependencies.insert(probe.name().to_string(), info);
    }
    let healthy = failures.is_empty();
    let mut body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "storage_mode": state.storage.mode(),
        "storage_info": storage_info,
        "serving_database": serving,
        "failures": failures,
    });
    if let Value::Object(map) = &mut body {
        map.extend(dependencies);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not enabled in this server").into_response(),
    }
}

async fn movies(
    State(state): State<AppState>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(
        pairs,
        &[
            "q",
            "genre",
            "year_from",
            "year_to",
            "min_count",
            "sort",
            "page",
            "page_size",
        ],
    )?;
    let filter = params.filter()?;
    let sort = match params.text("sort", 20)? {
        None => MovieSort::default(),
        Some(text) => MovieSort::parse(&text).ok_or_else(|| {
            ApiError::bad_parameter(
                "sort",
                format!("expected one of {}, got `{text}`", MovieSort::NAMES),
            )
        })?,
    };
    let page = params.page()?;
    let (items, total) = state.serving.movies(&filter, sort, page).await?;
    Ok(paged(items, total, page))
}

async fn movie(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let movie_id = path_id("id", &id)?;
    let (movie, recommendation) = state
        .serving
        .movie(movie_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("movie {movie_id} not found")))?;
    Ok(Json(json!({
        "movie_id": movie.movie_id,
        "title": movie.title,
        "genres": movie.genres,
        "year": movie.year,
        "features": {
            "avg_rating": movie.avg_rating,
            "rating_count": movie.rating_count,
            "std_dev": movie.std_dev,
            "last_update": movie.last_update,
        },
        "recommendation": recommendation.map(|r| json!({
            "rank": r.rank,
            "recommendation_score": r.recommendation_score,
            "popularity_score": r.popularity_score,
            "genre_match_score": r.genre_match_score,
        })),
    })))
}

async fn top(State(state): State<AppState>, Query(pairs): Pairs) -> Result<Json<Value>, ApiError> {
    let params = Params::new(
        pairs,
        &[
            "genre",
            "year_from",
            "year_to",
            "min_count",
            "page",
            "page_size",
        ],
    )?;
    let filter = params.filter()?;
    let page = params.page()?;
    let (items, total) = state.serving.top(&filter, page).await?;
    Ok(paged(items, total, page))
}

async fn user_features(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user_id = path_id("id", &id)?;
    let features = state
        .serving
        .user_features(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {user_id} not found")))?;
    Ok(Json(json!({
        "user_id": user_id,
        "avg_rating": features.avg_rating,
        "rating_count": features.rating_count,
        "std_dev": features.std_dev,
        "last_update": features.last_update,
    })))
}

async fn stats(
    State(state): State<AppState>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    Params::new(pairs, &[])?;
    let stats = state.serving.stats().await?;
    Ok(Json(json!({
        "movies": stats.movies,
        "rated_movies": stats.rated_movies,
        "users": stats.users,
        "ratings": stats.ratings,
        "average_rating": stats.average_rating,
        "rating_distribution": stats.rating_distribution.iter()
            .map(|(rating, count)| json!({"rating": rating, "count": count})).collect::<Vec<_>>(),
        "top_genres": stats.top_genres.iter().take(10)
            .map(|(genre, movies)| json!({"genre": genre, "movies": movies})).collect::<Vec<_>>(),
        "recommendations": stats.recommendations,
        "last_batch": stats.last_batch,
    })))
}
