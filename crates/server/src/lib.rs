//! The HTTP API on port 8082 (axum) over the serving database.
//!
//! Every bad parameter is a 400 whose JSON names the parameter; unknown ids
//! are 404; `/health` is 503 naming the dependency that failed. Ratings
//! posted to `/api/ratings` are validated as the stream validates them.

mod api;
mod error;
mod params;
mod ratings;

pub use api::{
    AppState, DependencyProbe, Personalizer, Recommended, StorageProbe, UserRatings, router,
};
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
