//! `POST /api/ratings`: the same validation as the stream; accepted events
//! go to Kafka when it is configured, or straight to the rating store.

use crate::web::auth;
use crate::{ApiError, AppState};
use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use movierec_core::RatingEvent;
use movierec_store::Account;
use movierec_store::RatingStore;
use serde_json::{Value, json};
use std::sync::Arc;

/// Where a rating posted to the API goes.
#[async_trait]
pub trait RatingIntake: Send + Sync {
    /// `true`: the event is queued (Kafka) and applied later by the consumer;
    /// `false`: it is stored by the time `submit` returns.
    fn queues(&self) -> bool;
    /// What to add to the response (where it was queued, the new features).
    async fn submit(&self, event: &RatingEvent, payload: &[u8]) -> Result<Value, String>;
}

/// The embedded path: straight into the rating store, through the same
/// batch code the consumer uses.
pub struct StoreIntake {
    pub store: Arc<dyn RatingStore>,
}

#[async_trait]
impl RatingIntake for StoreIntake {
    fn queues(&self) -> bool {
        false
    }

    async fn submit(&self, event: &RatingEvent, _payload: &[u8]) -> Result<Value, String> {
        let outcome = self
            .store
            .apply_events(std::slice::from_ref(event))
            .await
            .map_err(|e| format!("the rating store failed: {e}"))?;
        let user = self.store.user_features(event.user_id).await;
        let movie = self.store.movie_features(event.movie_id).await;
        let features = |f: Result<Option<movierec_core::FeatureAccumulator>, _>| {
            f.ok().flatten().map(|acc| json!(acc.features()))
        };
        Ok(json!({
            "status": "stored",
            // false: the store already holds a newer rating of this movie by this user.
            "applied": outcome.accepted > 0,
            "user_features": features(user),
            "movie_features": features(movie),
        }))
    }
}

/// Who calls the JSON API: a bearer token, or a browser session whose
/// request carries the session's CSRF token in `X-CSRF-Token`; `None` when
/// neither is presented. A token or session presented but not valid is 401.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Account>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| auth::well_formed(t))
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer TOKEN` with a token from /me/ratings or `movierec admin create-token`")
            })?;
        return match state
            .accounts
            .api_token_account(&auth::hash_token(token))
            .await?
        {
            Some(account) => Ok(Some(account)),
            None => Err(ApiError::unauthorized(
                "this API token is not valid (revoked or mistyped)",
            )),
        };
    }
    let jar = CookieJar::from_headers(headers);
    let Some(token) = jar.get(auth::SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let session = state
        .accounts
        .session(&auth::hash_token(&token), crate::web::now())
        .await?;
    match session {
        None => Ok(None),
        Some(session) => {
            let sent = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if auth::same(sent, &session.csrf) {
                Ok(Some(session.account))
            } else {
                Err(ApiError::forbidden(
                    "a session cookie needs the page's CSRF token in the X-CSRF-Token header (or use an API token)",
                ))
            }
        }
    }
}

/// `GET /api/me`: whom the token or session belongs to.
#[utoipa::path(get, path = "/api/me", tag = "users", security(("token" = [])),
    responses((status = 200, description = "the account", body = crate::openapi::AccountBody),
              (status = 401, description = "no token, or not a valid one", body = crate::openapi::ErrorBody)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    match caller(&state, &headers).await? {
        Some(account) => Ok(Json(json!(account))),
        None => Err(ApiError::unauthorized(
            "send `Authorization: Bearer TOKEN` (create a token on /me/ratings or with `movierec admin create-token`)",
        )),
    }
}

#[utoipa::path(post, path = "/api/ratings", tag = "ratings", security(("token" = [])),
    request_body(content = crate::openapi::RatingInput, description = "one rating event, validated as the stream validates it"),
    responses((status = 201, description = "stored (no Kafka)", body = crate::openapi::RatingAccepted),
              (status = 202, description = "queued on Kafka", body = crate::openapi::RatingAccepted),
              (status = 400, description = "invalid event; `error.reason` says why", body = crate::openapi::ErrorBody),
              (status = 401, description = "no valid token (unless serving.open_rating_api)", body = crate::openapi::ErrorBody),
              (status = 403, description = "a user's token posting another user's rating", body = crate::openapi::ErrorBody),
              (status = 503, description = "Kafka or the store is down", body = crate::openapi::ErrorBody)))]
pub(crate) async fn post_rating(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account = match caller(&state, &headers).await {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    // An anonymous caller learns nothing about the body: 401 comes first.
    if !state.web.open_rating_api && account.is_none() {
        return ApiError::unauthorized(
            "POST /api/ratings needs `Authorization: Bearer TOKEN` (create a token on /me/ratings or with `movierec admin create-token`); serving.open_rating_api: true accepts anonymous ratings",
        )
        .into_response();
    }
    let event = match RatingEvent::from_json(&body) {
        Ok(event) => event,
        Err(error) => {
            metrics::counter!("movierec_api_ratings_total", "outcome" => "rejected").increment(1);
            let body = json!({"error": {
                "code": "invalid_event",
                "reason": error.code(),
                "message": format!("{error}; expected {{\"user_id\": 1, \"movie_id\": 2, \"rating\": 4.5, \"timestamp\": \"2025-03-15T10:30:00\"}}"),
            }});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    if !state.web.open_rating_api
        && let Some(account) = &account
        && !account.is_admin
        && account.user_id != event.user_id
    {
        return ApiError::forbidden(format!(
            "this token belongs to user {}: it can post only that user's ratings (admin tokens can post any)",
            account.user_id
        ))
        .into_response();
    }
    match state.intake.submit(&event, &body).await {
        Ok(mut result) => {
            metrics::counter!("movierec_api_ratings_total", "outcome" => "accepted").increment(1);
            result["event"] = serde_json::from_str(&event.to_json()).unwrap_or(Value::Null);
            let status = if state.intake.queues() {
                StatusCode::ACCEPTED
            } else {
                StatusCode::CREATED
            };
            (status, Json(result)).into_response()
        }
        Err(message) => {
            metrics::counter!("movierec_api_ratings_total", "outcome" => "failed").increment(1);
            tracing::error!("POST /api/ratings: {message}");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "intake_unavailable",
                message,
                parameter: None,
            }
            .into_response()
        }
    }
}
