//! The HTTP API on port 8082 (axum) over the serving database.
//!
//! Every bad parameter is a 400 whose JSON names the parameter; unknown ids
//! are 404; `/health` is 503 naming the dependency that failed. Ratings
//! posted to `/api/ratings` are validated as the stream validates them.

mod api;
mod error;
mod openapi;
pub mod params;
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

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What one client may hold of the server: time to send its headers, time
/// for a whole request, and bytes of body.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A connection that has not sent a whole request head in this time is
    /// closed (slow or silent clients, slowloris).
    pub header_timeout: Duration,
    /// A request not answered in this time, slow body included, gets a 408.
    pub request_timeout: Duration,
    /// Larger bodies get a 413 before a handler sees them.
    pub max_body_bytes: usize,
}

/// A request head (target and headers) larger than this gets a 431.
/// hyper's own bound is its read buffer (~400 KiB), and a head that arrives
/// in one read passes even that.
const MAX_HEAD_BYTES: usize = 64 * 1024;

fn oversized_head(request: &Request) -> Option<ApiError> {
    let bytes = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    (bytes > MAX_HEAD_BYTES).then(|| ApiError {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        code: "request_head_too_large",
        message: format!(
            "the request's target and headers take {bytes} bytes; at most {MAX_HEAD_BYTES} are accepted"
        ),
        parameter: None,
    })
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
/// hyper's own HTTP/1 loop rather than `axum::serve`, which sets no timer,
/// so a client that never finishes its headers would hold a task forever.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let request_timeout = limits.request_timeout;
    let app = router(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| async move {
                if let Some(refused) = oversized_head(&request) {
                    return refused.into_response();
                }
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => ApiError {
                        status: StatusCode::REQUEST_TIMEOUT,
                        code: "request_timeout",
                        message: format!(
                            "the request took longer than {} s (serving.request_timeout_s)",
                            request_timeout.as_secs()
                        ),
                        parameter: None,
                    }
                    .into_response(),
                }
            },
        ));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: a pause, not a spin.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The client address feeds login rate limiting.
        let service =
            app.clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request.map(Body::new)
                });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection from {remote}: {error}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
