use crate::ApiError;
use crate::params::{MOVIE_LIST_PARAMS, Params, path_id};
use crate::ratings::{RatingIntake, post_rating};
use crate::web::{LoginLimiter, Operations, RatingActivity, WebSettings};
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use movierec_store::{AccountStore, MovieRow, MovieSort, Page, ServingStore};
use serde_json::{Value, json};
use std::collections::HashMap;
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
    /// The list computed at training for `user_id`, when `ratings` are
    /// exactly those the current model trained them on (so it is what
    /// [`Personalizer::recommend`] would answer, without the work) and it
    /// holds `k` movies; `None` otherwise.
    fn precomputed(
        &self,
        _user_id: u64,
        _ratings: &[(u64, f64)],
        _k: usize,
    ) -> Option<Recommended> {
        None
    }
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
    /// Web accounts, sessions and API tokens (the serving database).
    pub accounts: Arc<dyn AccountStore>,
    pub web: WebSettings,
    /// Batch runs, dead letters, model versions for the admin area.
    pub operations: Option<Arc<dyn Operations>>,
    /// Per-month and per-movie rating counts for charts.
    pub activity: Option<Arc<dyn RatingActivity>>,
    pub limiter: Arc<LoginLimiter>,
    pub web_cache: Arc<WebCache>,
}

/// Slow-changing lists the pages need on every request, refreshed once a
/// minute, and the top list's answers for a second.
#[derive(Default)]
pub struct WebCache {
    genres: tokio::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
    catalogue: std::sync::RwLock<Option<Catalogue>>,
    catalogue_refresh: tokio::sync::Mutex<()>,
    top: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, axum::body::Bytes)>,
    >,
}

/// Every catalogue row, by id, as of one [`ServingStore::catalogue_version`].
struct Catalogue {
    checked: std::time::Instant,
    version: u64,
    movies: Arc<HashMap<u64, MovieRow>>,
}

/// How long the catalogue in memory is used before asking whether a batch
/// has published since (the top list's answers live as long).
const CATALOGUE_CHECK: std::time::Duration = TOP_ANSWER_TTL;

/// The top list changes only when a batch publishes (daily, hourly): the
/// same query within this long gets the same answer instead of two SQL
/// queries, so a burst of identical requests costs one.
const TOP_ANSWER_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl WebCache {
    fn top_answer(&self, key: &str) -> Option<axum::body::Bytes> {
        let cached = self.top.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .get(key)
            .filter(|(at, _)| at.elapsed() < TOP_ANSWER_TTL)
            .map(|(_, body)| body.clone())
    }

    fn keep_top_answer(&self, key: String, body: axum::body::Bytes) {
        let mut cached = self.top.lock().unwrap_or_else(|e| e.into_inner());
        // Many distinct filters: drop the expired answers, never grow unbounded.
        if cached.len() >= 10_000 {
            cached.retain(|_, (at, _)| at.elapsed() < TOP_ANSWER_TTL);
            if cached.len() >= 10_000 {
                cached.clear();
            }
        }
        cached.insert(key, (std::time::Instant::now(), body));
    }

    /// Every catalogue row, by id: kept in memory, so a personalized list
    /// costs no query for its movies. It changes only when a batch
    /// publishes, which at most one request a second asks about.
    pub(crate) async fn catalogue(
        &self,
        state: &AppState,
    ) -> movierec_store::Result<Arc<HashMap<u64, MovieRow>>> {
        let fresh = || {
            self.catalogue
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .filter(|c| c.checked.elapsed() < CATALOGUE_CHECK)
                .map(|c| c.movies.clone())
        };
        if let Some(movies) = fresh() {
            return Ok(movies);
        }
        let _refreshing = self.catalogue_refresh.lock().await;
        if let Some(movies) = fresh() {
            return Ok(movies);
        }
        let version = state.serving.catalogue_version().await?;
        let held = self
            .catalogue
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| c.version == version)
            .map(|c| c.movies.clone());
        let movies = match held {
            Some(movies) => movies,
            None => Arc::new(
                state
                    .serving
                    .all_movies()
                    .await?
                    .into_iter()
                    .map(|m| (m.movie_id, m))
                    .collect(),
            ),
        };
        *self.catalogue.write().unwrap_or_else(|e| e.into_inner()) = Some(Catalogue {
            checked: std::time::Instant::now(),
            version,
            movies: movies.clone(),
        });
        Ok(movies)
    }

    /// Every genre of a rated movie, by name.
    pub(crate) async fn genres(&self, state: &AppState) -> movierec_store::Result<Vec<String>> {
        let mut cached = self.genres.lock().await;
        if let Some((at, genres)) = cached.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(genres.clone());
        }
        let mut genres: Vec<String> = state
            .serving
            .stats()
            .await?
            .top_genres
            .into_iter()
            .map(|(genre, _)| genre)
            .collect();
        genres.sort();
        *cached = Some((std::time::Instant::now(), genres.clone()));
        Ok(genres)
    }
}

pub fn router(state: AppState) -> Router {
    let pages = crate::web::routes(&state);
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
        .route("/api/me", get(crate::ratings::me))
        .route("/api/openapi.json", get(crate::openapi::document))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::not_found(
                "no such endpoint; see /api/movies, /api/movies/{id}/similar, /api/recommendations/top, /api/users/{id}/recommendations, /api/stats, POST /api/ratings, /health, /metrics",
            )
        })
        .merge(pages)
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::web::security_headers))
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

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "every dependency answers", body = crate::openapi::Health),
              (status = 503, description = "a dependency failed; `failures` names it", body = crate::openapi::Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
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

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
              (status = 404, description = "metrics are not enabled", body = crate::openapi::ErrorBody)))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            // Sampled on read: the counter lives in SQLite, not in our code.
            metrics::gauge!("movierec_sqlite_memory_bytes")
                .set(movierec_store::sqlite_memory_used() as f64);
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
                .into_response()
        }
        None => ApiError::not_found("metrics are not enabled in this server").into_response(),
    }
}

#[utoipa::path(get, path = "/api/movies", tag = "movies",
    params(("q" = Option<String>, Query, min_length = 1, max_length = 200, pattern = r"\S", description = "case-insensitive title substring (max 200 characters)"),
        ("genre" = Option<String>, Query, min_length = 1, max_length = 50, pattern = r"\S", description = "one genre, exact and case-insensitive, e.g. Drama"),
        ("year_from" = Option<i32>, Query, minimum = 1800, maximum = 2200, description = "release year from (1800-2200)"),
        ("year_to" = Option<i32>, Query, minimum = 1800, maximum = 2200, description = "release year to (1800-2200), not before year_from"),
        ("min_count" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_i64, description = "at least this many ratings"),
        ("page" = Option<u64>, Query, minimum = 1, maximum = 1000000, description = "1-based page (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1-100 (default 20)"),
        ("sort" = Option<String>, Query, pattern = r"^(id|title|-title|year|-year|rating|-rating|count|-count)$", description = "id, title, -title, year, -year, rating, -rating, count, -count")),
    responses((status = 200, description = "a page of movies", body = crate::openapi::MoviePage),
              (status = 400, description = "a parameter is invalid (named in `error.parameter`)", body = crate::openapi::ErrorBody)))]
pub(crate) async fn movies(
    State(state): State<AppState>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let params = Params::new(pairs, &MOVIE_LIST_PARAMS)?;
    let filter = params.filter()?;
    let sort = params.sort(MovieSort::default())?;
    let page = params.page()?;
    let (items, total) = state.serving.movies(&filter, sort, page).await?;
    Ok(paged(items, total, page))
}

#[utoipa::path(get, path = "/api/movies/{id}", tag = "movies",
    params(("id" = u64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "movie id")),
    responses((status = 200, description = "the movie, its features, rank and similar movies", body = crate::openapi::MovieDetail),
              (status = 400, description = "the id is not a positive integer", body = crate::openapi::ErrorBody),
              (status = 404, description = "no such movie", body = crate::openapi::ErrorBody)))]
pub(crate) async fn movie(
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

#[utoipa::path(get, path = "/api/recommendations/top", tag = "recommendations",
    params(("genre" = Option<String>, Query, min_length = 1, max_length = 50, pattern = r"\S", description = "one genre, exact and case-insensitive, e.g. Drama"),
        ("year_from" = Option<i32>, Query, minimum = 1800, maximum = 2200, description = "release year from (1800-2200)"),
        ("year_to" = Option<i32>, Query, minimum = 1800, maximum = 2200, description = "release year to (1800-2200), not before year_from"),
        ("min_count" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_i64, description = "at least this many ratings"),
        ("page" = Option<u64>, Query, minimum = 1, maximum = 1000000, description = "1-based page (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1-100 (default 20)")),
    responses((status = 200, description = "a page of the Bayesian top-N", body = crate::openapi::TopPage),
              (status = 400, description = "a parameter is invalid", body = crate::openapi::ErrorBody)))]
pub(crate) async fn top(
    State(state): State<AppState>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let key = format!("{pairs:?}");
    if let Some(body) = state.web_cache.top_answer(&key) {
        return Ok(json_bytes(body));
    }
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
    let body = axum::body::Bytes::from(paged(items, total, page).0.to_string());
    state.web_cache.keep_top_answer(key, body.clone());
    Ok(json_bytes(body))
}

fn json_bytes(body: axum::body::Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

const MAX_K: u64 = 100;

#[utoipa::path(get, path = "/api/movies/{id}/similar", tag = "recommendations",
    params(("id" = u64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "movie id"), ("k" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1-100 (default 10)")),
    responses((status = 200, description = "movies nearest in the ranking model", body = crate::openapi::Similar),
              (status = 400, description = "a parameter is invalid", body = crate::openapi::ErrorBody),
              (status = 404, description = "no such movie", body = crate::openapi::ErrorBody)))]
pub(crate) async fn similar_movies(
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

/// A user's list, from whichever source can answer (see [`recommendations_for`]).
pub(crate) struct ForUser {
    pub personalized: bool,
    pub source: &'static str,
    /// model, model_version or fallback_reason.
    pub extra: Value,
    pub rated: usize,
    pub items: Vec<Value>,
}

/// A user's top K: folded in from their current ratings when a model is
/// loaded (so a rating posted a moment ago counts), else the batch's list,
/// else the popularity top; always without the movies they rated.
pub(crate) async fn recommendations_for(
    state: &AppState,
    user_id: u64,
    k: u64,
) -> Result<ForUser, ApiError> {
    let rated = match &state.ratings {
        Some(source) => source
            .user_ratings(user_id)
            .await
            .map_err(ApiError::unavailable)?,
        None => Vec::new(),
    };
    let seen: std::collections::HashSet<u64> = rated.iter().map(|r| r.0).collect();
    let answer =
        |personalized: bool, source: &'static str, extra: Value, items: Vec<Value>| ForUser {
            personalized,
            source,
            extra,
            rated: rated.len(),
            items,
        };
    if !rated.is_empty()
        && let Some(personalizer) = &state.personalizer
    {
        let list = match personalizer.precomputed(user_id, &rated, k as usize) {
            Some(list) => Some((list, true)),
            None => personalizer
                .recommend(&rated, k as usize)
                .map(|list| (list, false)),
        };
        if let Some((list, precomputed)) = list
            && !list.items.is_empty()
        {
            let movies = state.web_cache.catalogue(state).await?;
            let items = list
                .items
                .iter()
                .filter_map(|(id, score)| {
                    let mut item = json!(movies.get(id)?);
                    item["score"] = json!(score);
                    Some(item)
                })
                .collect();
            return Ok(answer(
                true,
                "fold-in",
                json!({"model": list.model, "model_version": list.version, "precomputed": precomputed}),
                items,
            ));
        }
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
        return Ok(answer(true, "batch", json!({"model": "ials"}), batch));
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
    Ok(answer(
        false,
        "popularity",
        json!({"fallback_reason": reason}),
        items,
    ))
}

#[utoipa::path(get, path = "/api/users/{id}/recommendations", tag = "recommendations",
    params(("id" = u64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "user id (ratings)"), ("k" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1-100 (default 10)")),
    responses((status = 200, description = "fold-in, batch list or popularity fallback; rated movies left out", body = crate::openapi::UserRecommendations),
              (status = 400, description = "a parameter is invalid", body = crate::openapi::ErrorBody),
              (status = 503, description = "the rating storage failed", body = crate::openapi::ErrorBody)))]
pub(crate) async fn user_recommendations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let user_id = path_id("id", &id)?;
    let params = Params::new(pairs, &["k"])?;
    let k = params.int("k", 1, MAX_K)?.unwrap_or(10);
    let list = recommendations_for(&state, user_id, k).await?;
    let mut body = json!({
        "user_id": user_id,
        "k": k,
        "personalized": list.personalized,
        "source": list.source,
        "rated_movies": list.rated,
        "items": list.items,
    });
    if let (Value::Object(map), Value::Object(extra)) = (&mut body, list.extra) {
        map.extend(extra);
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/api/users/{id}/features", tag = "users",
    params(("id" = u64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "user id (ratings)")),
    responses((status = 200, description = "features as of the last batch", body = crate::openapi::UserFeatures),
              (status = 400, description = "the id is not a positive integer", body = crate::openapi::ErrorBody),
              (status = 404, description = "no such user", body = crate::openapi::ErrorBody)))]
pub(crate) async fn user_features(
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

#[utoipa::path(get, path = "/api/stats", tag = "operations",
    responses((status = 200, description = "counts and distributions as of the last batch", body = crate::openapi::StatsBody)))]
pub(crate) async fn stats(
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
