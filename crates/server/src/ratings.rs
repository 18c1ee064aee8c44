//! `POST /api/ratings`: the same validation as the stream; accepted events
//! go to Kafka when it is configured, or straight to the rating store.

use crate::{ApiError, AppState};
use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use movierec_core::RatingEvent;
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

pub(crate) async fn post_rating(State(state): State<AppState>, body: Bytes) -> Response {
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
