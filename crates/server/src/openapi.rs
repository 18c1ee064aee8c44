//! `GET /api/openapi.json`: generated from the handlers' `#[utoipa::path]`
//! annotations and the response types below. The types describe the JSON
//! the handlers build; a test checks them against the serialized store rows
//! and that every JSON route of the router is documented.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable code: invalid_parameter, not_found, invalid_event, unauthorized, …
    code: String,
    message: String,
    /// The parameter at fault, when there is one.
    parameter: Option<String>,
    /// For invalid events: bad_json, missing_field, bad_rating, …
    reason: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Movie {
    movie_id: u64,
    title: String,
    genres: Vec<String>,
    year: Option<i32>,
    avg_rating: f64,
    rating_count: u64,
    std_dev: f64,
    last_update: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TopMovie {
    /// 1-based position in the whole published list.
    rank: u64,
    movie_id: u64,
    title: String,
    genres: Vec<String>,
    year: Option<i32>,
    recommendation_score: f64,
    popularity_score: f64,
    genre_match_score: f64,
    avg_rating: f64,
    rating_count: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ScoredMovie {
    score: f64,
    movie_id: u64,
    title: String,
    genres: Vec<String>,
    year: Option<i32>,
    avg_rating: f64,
    rating_count: u64,
    std_dev: f64,
    last_update: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct MoviePage {
    items: Vec<Movie>,
    page: u64,
    page_size: u64,
    total: u64,
    total_pages: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TopPage {
    items: Vec<TopMovie>,
    page: u64,
    page_size: u64,
    total: u64,
    total_pages: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct MovieFeatures {
    avg_rating: f64,
    rating_count: u64,
    std_dev: f64,
    last_update: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Rank {
    rank: u64,
    recommendation_score: f64,
    popularity_score: f64,
    genre_match_score: f64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct MovieDetail {
    movie_id: u64,
    title: String,
    genres: Vec<String>,
    year: Option<i32>,
    features: MovieFeatures,
    /// `null` when the movie is not in the published top-N.
    recommendation: Option<Rank>,
    similar: Vec<ScoredMovie>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Similar {
    movie_id: u64,
    k: u64,
    items: Vec<ScoredMovie>,
    model: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UserRecommendations {
    user_id: u64,
    k: u64,
    personalized: bool,
    /// fold-in, batch or popularity.
    source: String,
    rated_movies: u64,
    /// Movies with `score` (fold-in, batch) or top-N rows (popularity).
    items: Vec<serde_json::Value>,
    model: Option<String>,
    model_version: Option<String>,
    /// fold-in only: `true` when the user's ratings are those the model
    /// trained on, so the list computed then is served (the same answer).
    precomputed: Option<bool>,
    fallback_reason: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UserFeatures {
    user_id: u64,
    avg_rating: f64,
    rating_count: u64,
    std_dev: f64,
    last_update: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RatingCount {
    rating: f64,
    count: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct GenreCount {
    genre: String,
    movies: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct StatsBody {
    movies: u64,
    rated_movies: u64,
    users: u64,
    ratings: u64,
    average_rating: Option<f64>,
    rating_distribution: Vec<RatingCount>,
    top_genres: Vec<GenreCount>,
    recommendations: u64,
    /// The last batch run, `null` before the first.
    last_batch: Option<serde_json::Value>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Health {
    /// healthy or unhealthy.
    status: String,
    /// sqlite or aws.
    storage_mode: String,
    storage_info: serde_json::Value,
    serving_database: serde_json::Value,
    failures: Vec<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RatingInput {
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    user_id: u64,
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    movie_id: u64,
    /// 0.5 to 5.0 in half stars.
    #[schema(minimum = 0.5, maximum = 5.0, multiple_of = 0.5)]
    rating: f64,
    /// ISO 8601 (UTC when no offset) or Unix seconds.
    timestamp: String,
    /// Optional idempotency key.
    event_id: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RatingAccepted {
    /// stored or queued.
    status: String,
    applied: Option<bool>,
    user_features: Option<serde_json::Value>,
    movie_features: Option<serde_json::Value>,
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    event: serde_json::Value,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AccountBody {
    id: u64,
    username: String,
    is_admin: bool,
    user_id: u64,
    created_at: i64,
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from /me/ratings or `movierec admin create-token`",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "movierec", description = "Movie recommendations: the JSON API of `movierec serve`."),
    paths(
        crate::api::health,
        crate::api::metrics_text,
        crate::api::movies,
        crate::api::movie,
        crate::api::similar_movies,
        crate::api::top,
        crate::api::user_recommendations,
        crate::api::user_features,
        crate::api::stats,
        crate::ratings::post_rating,
        crate::ratings::me,
        document,
    ),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "this document", body = serde_json::Value)))]
pub(crate) async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
