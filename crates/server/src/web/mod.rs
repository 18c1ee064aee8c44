//! The web application (the Django site's role): server-rendered pages over
//! the same state as the JSON API, accounts with argon2 passwords and
//! server-side sessions, CSRF tokens on every form, an admin area.
//!
//! Every page works without JavaScript. Cookies: `mr_session` (HttpOnly,
//! SameSite=Lax, Secure unless `serving.secure_cookies: false`) and
//! `mr_csrf` (the anonymous visitor's form token; a logged-in session has
//! its own).

mod admin;
pub(crate) mod auth;
pub mod charts;
mod pages;

use crate::AppState;
use askama::Template;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use movierec_store::{Account, ModelRecord};
use std::net::SocketAddr;
use std::time::Duration;

pub use auth::LoginLimiter;

/// How the web application behaves (from `serving.*` in the config).
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The `Secure` attribute on cookies: browsers still accept such cookies
    /// from http://localhost, so only plain HTTP on another host needs `false`.
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    /// `true`: `POST /api/ratings` takes anonymous ratings for any user (the
    /// behaviour before accounts); `false`: a token or session is required.
    pub open_rating_api: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            open_rating_api: false,
        }
    }
}

/// A dead letter as the admin page shows it.
#[derive(Debug, Clone)]
pub struct DeadLetterView {
    pub failed_at: String,
    pub reason: String,
    pub error: String,
    pub source: String,
    pub payload: String,
}

/// What the admin area can do beyond reading the serving database.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Starts a batch run in the background; `Err` says why not (one is
    /// already running). The run shows in the batch runs when it ends.
    async fn run_batch(&self) -> Result<String, String>;
    fn batch_running(&self) -> bool;
    /// `Err` says why there is nothing to show (no Kafka, broker down).
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterView>, String>;
    /// Re-sends the dead letters that pass validation now: (re-sent, still
    /// invalid and left in the topic).
    async fn replay_dead_letters(&self) -> Result<(u64, u64), String>;
    async fn model_versions(&self, limit: u64) -> Result<Vec<ModelRecord>, String>;
}

/// Aggregates over the ratings themselves, for charts (`None`: this
/// storage mode cannot answer them cheaply).
#[async_trait]
pub trait RatingActivity: Send + Sync {
    /// ("YYYY-MM", ratings), oldest first; `Err` says why not now (e.g.
    /// still being counted), for the page to show.
    async fn ratings_per_month(&self) -> Result<Vec<(String, u64)>, String>;
    /// (rating, count) of one movie's current ratings.
    async fn movie_distribution(&self, movie_id: u64) -> Option<Vec<(f64, u64)>>;
}

/// Who is asking, resolved once per request by [`context`].
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub account: Option<Account>,
    /// The token this viewer's forms must carry.
    pub csrf: String,
    /// The hash of the session token, when logged in.
    pub session: Option<String>,
    /// The client's address, for rate limiting.
    pub client: String,
}

/// The part of every page the layout needs.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    pub username: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
}

impl Viewer {
    pub fn nav(&self) -> Nav {
        Nav {
            username: self.account.as_ref().map(|a| a.username.clone()),
            is_admin: self.account.as_ref().is_some_and(|a| a.is_admin),
            csrf: self.csrf.clone(),
            flash: None,
        }
    }

    /// The layout's part, with the message of the redirect that led here.
    pub fn nav_after(&self, done: &Done) -> Nav {
        Nav {
            flash: done.message(),
            ..self.nav()
        }
    }

    pub fn fail(&self, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
            nav: self.nav(),
        }
    }

    pub fn unavailable(&self, error: impl std::fmt::Display) -> PageError {
        tracing::error!("page failed: {error}");
        self.fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the serving database failed: {error}"),
        )
    }

    /// The form's token must be this viewer's (constant-time compare).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        if auth::same(submitted, &self.csrf) {
            Ok(())
        } else {
            Err(self.fail(
                StatusCode::FORBIDDEN,
                "the form's security token is missing or stale (CSRF check failed): reload the page and submit again",
            ))
        }
    }
}

/// An error shown as a page, with the status it deserves.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
    nav: Nav,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: &'a Nav,
    status: String,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            nav: &self.nav,
            status: format!(
                "{} {}",
                self.status.as_u16(),
                self.status.canonical_reason().unwrap_or("")
            ),
            message: &self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!("template failed: {error}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Query parameters after a redirect: a message code, and after a replay
/// its counts (numbers only, so a link cannot inject text).
#[derive(serde::Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
    resent: Option<u64>,
    invalid: Option<u64>,
}

impl Done {
    /// The message to show, chosen by code: nothing a link can inject.
    fn message(&self) -> Option<String> {
        if let (Some("replayed"), Some(resent), Some(invalid)) =
            (self.done.as_deref(), self.resent, self.invalid)
        {
            return Some(format!(
                "Replay: {resent} re-sent to their topic, {invalid} still invalid (left in the dead-letter topic)."
            ));
        }
        Some(
            match self.done.as_deref()? {
                "welcome" => "Welcome! Rate a few movies and \"For you\" will follow your taste.",
                "logged-in" => "You are logged in.",
                "logged-out" => "You are logged out.",
                "rated" => "Thanks: your rating is stored, and \"For you\" already uses it.",
                "queued" => "Thanks: your rating is queued and will count in a moment.",
                "batch-started" => "A batch run started; it appears below when it ends.",
                "role-changed" => "The role is changed.",
                _ => return None,
            }
            .to_string(),
        )
    }
}

/// A form that carries nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// Adds `Set-Cookie` for `name` (see [`cookie`]).
pub(crate) fn set_cookie(
    response: &mut Response,
    settings: &WebSettings,
    name: &'static str,
    value: String,
    max_age: Duration,
) {
    let cookie = cookie(settings, name, value, max_age);
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn cookie(
    settings: &WebSettings,
    name: &'static str,
    value: String,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(settings.secure_cookies)
        .same_site(if name == SESSION {
            SameSite::Lax
        } else {
            SameSite::Strict
        })
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build()
}

const SESSION: &str = auth::SESSION_COOKIE;

/// Resolves the viewer (session cookie, else the anonymous CSRF cookie,
/// issued on first visit) and hands it to the page.
async fn context(
    State(state): State<AppState>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let mut viewer = Viewer {
        account: None,
        csrf: String::new(),
        session: None,
        client,
    };
    if let Some(token) = jar
        .get(SESSION)
        .map(|c| c.value())
        .filter(|t| auth::well_formed(t))
    {
        let hash = auth::hash_token(token);
        match state.accounts.session(&hash, now()).await {
            Ok(Some(session)) => {
                viewer.account = Some(session.account);
                viewer.csrf = session.csrf;
                viewer.session = Some(hash);
            }
            Ok(None) => {}
            Err(error) => return viewer.unavailable(error).into_response(),
        }
    }
    let mut issued = None;
    if viewer.session.is_none() {
        match jar
            .get(auth::CSRF_COOKIE)
            .map(|c| c.value())
            .filter(|t| auth::well_formed(t))
        {
            Some(token) => viewer.csrf = token.to_string(),
            None => {
                let token = auth::new_token();
                viewer.csrf = token.clone();
                issued = Some(token);
            }
        }
    }
    request.extensions_mut().insert(viewer);
    let mut response = next.run(request).await;
    if let Some(token) = issued {
        set_cookie(
            &mut response,
            &state.web,
            auth::CSRF_COOKIE,
            token,
            Duration::from_secs(24 * 3600),
        );
    }
    response
}

/// Headers on every response, pages and API alike.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("strict-transport-security", "max-age=31536000"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/movies", get(pages::browse))
        .route("/movies/{id}", get(pages::movie))
        .route("/movies/{id}/rate", post(pages::rate))
        .route("/signup", get(pages::signup_form).post(pages::signup))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/me/ratings", get(pages::my_ratings))
        .route("/me/tokens", post(pages::create_token))
        .route("/stats", get(pages::stats))
        .route("/admin", get(admin::index))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}/role", post(admin::set_role))
        .route("/admin/runs", get(admin::runs).post(admin::run_now))
        .route("/admin/dead-letters", get(admin::dead_letters))
        .route("/admin/dead-letters/replay", post(admin::replay))
        .route("/admin/models", get(admin::models))
        .layer(middleware::from_fn_with_state(state.clone(), context))
        .route("/static/app.css", get(stylesheet))
}
