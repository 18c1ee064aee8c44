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

/// A user's current ratings, (movie, rating), from the rating storage: what
/// personalized lists start from, so they follow every new rating.
#[async_trait]
pub trait UserRatings: Send + Sync {
    async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>, String>;
}

/// A personalized list computed at request time.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommended {
    pub model: String,
    pub version: String,
    /// (movie, score), best first, the rated movies left out.
    pub items: Vec<(u64, f64)>,
}

/// The ranking model as it serves: folds a user in from their ratings.
pub trait Personalizer: Send + Sync {
    /// `None` while no model has been trained.
    fn recommend(&self, ratings: &[(u64, f64)], k: usize) -> Option<Recommended>;
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
    /// Where a user's current ratings come from (`None`: only the lists
    /// the batch published are served).
    pub ratings: Option<Arc<dyn UserRatings>>,
    pub personalizer: Option<Arc<dyn Personalizer>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/movies", get(movies))
        .route("/api/movies/{id}", get(movie))
        .route("/api/recommendations/top", get(top))
        .route("/api/users/{id}/features", get(user_features))
        .route("/api/users/{id}/recommendations", get(user_recommendations))
        .route("/api/movies/{id}/similar", get(similar_movies))
        .route("/api/stats", get(stats))
        .route("/api/ratings", post(post_rating))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::not_found(
                "no such endpoint; see /api/movies, /api/movies/{id}/similar, /api/recommendations/top, /api/users/{id}/recommendations, /api/stats, POST /api/ratings, /health, /metrics",
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
    let similar = state.serving.similar_movies(movie_id, 10).await?;
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
        "similar": similar,
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

const MAX_K: u64 = 100;

async fn similar_movies(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let movie_id = path_id("id", &id)?;
    let params = Params::new(pairs, &["k"])?;
    let k = params.int("k", 1, MAX_K)?.unwrap_or(10);
    if state.serving.movie(movie_id).await?.is_none() {
        return Err(ApiError::not_found(format!("movie {movie_id} not found")));
    }
    let items = state.serving.similar_movies(movie_id, k).await?;
    Ok(Json(json!({
        "movie_id": movie_id,
        "k": k,
        "items": items,
        "model": "ials",
    })))
}

/// A user's top K: folded in from their current ratings when a model is
/// loaded (so a rating posted a moment ago counts), else the batch's list,
/// else the popularity top; always without the movies they rated.
async fn user_recommendations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let user_id = path_id("id", &id)?;
    let params = Params::new(pairs, &["k"])?;
    let k = params.int("k", 1, MAX_K)?.unwrap_or(10);
    let rated = match &state.ratings {
        Some(source) => source
            .user_ratings(user_id)
            .await
            .map_err(ApiError::unavailable)?,
        None => Vec::new(),
    };
    let seen: std::collections::HashSet<u64> = rated.iter().map(|r| r.0).collect();
    let body = |personalized: bool, source: &str, extra: Value, items: Vec<Value>| {
        let mut body = json!({
            "user_id": user_id,
            "k": k,
            "personalized": personalized,
            "source": source,
            "rated_movies": rated.len(),
            "items": items,
        });
        if let (Value::Object(map), Value::Object(extra)) = (&mut body, extra) {
            map.extend(extra);
        }
        Json(body)
    };
    if !rated.is_empty()
        && let Some(personalizer) = &state.personalizer
        && let Some(list) = personalizer.recommend(&rated, k as usize)
        && !list.items.is_empty()
    {
        let ids: Vec<u64> = list.items.iter().map(|i| i.0).collect();
        let rows: std::collections::HashMap<u64, movierec_store::MovieRow> = state
            .serving
            .movies_by_id(&ids)
            .await?
            .into_iter()
            .map(|m| (m.movie_id, m))
            .collect();
        let items = list
            .items
            .iter()
            .filter_map(|(id, score)| {
                let movie = rows.get(id)?;
                let mut item = json!(movie);
                item["score"] = json!(score);
                Some(item)
            })
            .collect();
        return Ok(body(
            true,
            "fold-in",
            json!({"model": list.model, "model_version": list.version}),
            items,
        ));
    }
    let batch: Vec<Value> = state
        .serving
        .user_recommendations(user_id, k + seen.len() as u64)
        .await?
        .into_iter()
        .filter(|r| !seen.contains(&r.movie.movie_id))
        .take(k as usize)
        .map(|r| json!(r))
        .collect();
    if !batch.is_empty() {
        return Ok(body(true, "batch", json!({"model": "ials"}), batch));
    }
    let reason = if rated.is_empty() {
        "no ratings from this user yet"
    } else {
        "no personalized model trained yet"
    };
    let page = movierec_store::Page {
        page: 1,
        page_size: k + seen.len() as u64,
    };
    let (top, _) = state
        .serving
        .top(&movierec_store::MovieFilter::default(), page)
        .await?;
    let items = top
        .into_iter()
        .filter(|r| !seen.contains(&r.movie_id))
        .take(k as usize)
        .map(|r| json!(r))
        .collect();
    Ok(body(
        false,
        "popularity",
        json!({"fallback_reason": reason}),
        items,
    ))
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
