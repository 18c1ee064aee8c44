//! The HTTP API on port 8082 (axum) over the serving database.
//!
//! Every bad parameter is a 400 whose JSON names the parameter; unknown ids
//! are 404; `/health` is 503 naming the dependency that failed. Ratings
//! posted to `/api/ratings` are validated as the stream validates them.

mod api;
mod error;
mod openapi;
mod params;
mod ratings;
mod web;

pub use api::{
    AppState, DependencyProbe, Personalizer, Recommended, StorageProbe, UserRatings, WebCache,
    router,
};
/// Server-side SVG charts (also drawn into benchmark reports).
pub use web::charts;
pub use web::{DeadLetterView, LoginLimiter, Operations, RatingActivity, WebSettings};
/// Password hashing and token minting, shared with `movierec admin`.
pub mod credentials {
    pub use crate::web::auth::{check_new_credentials, hash_password, hash_token, new_token};
}
pub use error::ApiError;
pub use ratings::{RatingIntake, StoreIntake};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The client address feeds login rate limiting.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
