//! The admin area: anonymous visitors are sent to log in, logged-in users
//! who are not admins get 403.

use super::pages::require_login;
use super::{CsrfOnly, DeadLetterView, Done, Nav, PageError, Viewer, render};
use crate::AppState;
use crate::params::path_id;
use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use movierec_store::{BatchRun, ModelRecord};
use serde::Deserialize;

pub(crate) struct UserView {
    id: u64,
    username: String,
    user_id: u64,
    is_admin: bool,
    created: String,
}

pub(crate) struct ModelView {
    name: String,
    version: String,
    created_at: String,
    card: String,
}

pub(crate) struct RunView {
    started_at: String,
    finished_at: String,
    engine: String,
    status: String,
    ratings: u64,
    ranked: u64,
    duration_ms: u64,
    error: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Nav,
    section: &'static str,
    users: Vec<UserView>,
    runs: Vec<RunView>,
    running: bool,
    letters: Vec<DeadLetterView>,
    problem: Option<String>,
    models: Vec<ModelView>,
}

impl AdminPage {
    fn new(nav: Nav, section: &'static str) -> Self {
        Self {
            nav,
            section,
            users: Vec::new(),
            runs: Vec::new(),
            running: false,
            letters: Vec::new(),
            problem: None,
            models: Vec::new(),
        }
    }
}

/// `Ok(None)`: the viewer is an admin; `Ok(Some(response))`: what to answer instead.
fn gate(viewer: &Viewer, here: &str) -> Result<Option<Response>, PageError> {
    match require_login(viewer, here) {
        Err(redirect) => Ok(Some(redirect.into_response())),
        Ok(account) if account.is_admin => Ok(None),
        Ok(_) => Err(viewer.fail(
            StatusCode::FORBIDDEN,
            "the admin area is for admins only; an admin can change your role",
        )),
    }
}

macro_rules! admin_only {
    ($viewer:expr, $here:expr) => {
        if let Some(response) = gate(&$viewer, $here)? {
            return Ok(response);
        }
    };
}

pub(crate) async fn index(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    admin_only!(viewer, "/admin");
    let mut page = AdminPage::new(viewer.nav(), "index");
    page.users = users_view(&state, &viewer).await?;
    Ok(render(&page))
}

async fn users_view(state: &AppState, viewer: &Viewer) -> Result<Vec<UserView>, PageError> {
    Ok(state
        .accounts
        .accounts()
        .await
        .map_err(|e| viewer.unavailable(e))?
        .into_iter()
        .map(|a| UserView {
            id: a.id,
            username: a.username,
            user_id: a.user_id,
            is_admin: a.is_admin,
            created: chrono::DateTime::from_timestamp(a.created_at, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        })
        .collect())
}

pub(crate) async fn users(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    admin_only!(viewer, "/admin/users");
    let mut page = AdminPage::new(viewer.nav_after(&done), "users");
    page.users = users_view(&state, &viewer).await?;
    Ok(render(&page))
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

pub(crate) async fn set_role(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    admin_only!(viewer, "/admin/users");
    let account_id =
        path_id("id", &id).map_err(|e| viewer.fail(StatusCode::BAD_REQUEST, e.message))?;
    let is_admin = match form.role.as_str() {
        "admin" => true,
        "user" => false,
        other => {
            return Err(viewer.fail(
                StatusCode::BAD_REQUEST,
                format!("role `{other}`: expected admin or user"),
            ));
        }
    };
    if !is_admin && viewer.account.as_ref().is_some_and(|a| a.id == account_id) {
        return Err(viewer.fail(
            StatusCode::BAD_REQUEST,
            "you cannot remove your own admin role: another admin must do it",
        ));
    }
    if !state
        .accounts
        .set_admin(account_id, is_admin)
        .await
        .map_err(|e| viewer.unavailable(e))?
    {
        return Err(viewer.fail(
            StatusCode::NOT_FOUND,
            format!("account {account_id} not found"),
        ));
    }
    Ok(Redirect::to("/admin/users?done=role-changed").into_response())
}

fn run_view(run: BatchRun) -> RunView {
    RunView {
        started_at: run.started_at,
        finished_at: run.finished_at,
        engine: run.engine,
        status: run.status,
        ratings: run.ratings,
        ranked: run.ranked,
        duration_ms: run.duration_ms,
        error: run.error.unwrap_or_default(),
    }
}

pub(crate) async fn runs(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    admin_only!(viewer, "/admin/runs");
    let mut page = AdminPage::new(viewer.nav_after(&done), "runs");
    page.runs = state
        .serving
        .batch_runs(50)
        .await
        .map_err(|e| viewer.unavailable(e))?
        .into_iter()
        .map(run_view)
        .collect();
    page.running = state.operations.as_ref().is_some_and(|o| o.batch_running());
    Ok(render(&page))
}

pub(crate) async fn run_now(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    admin_only!(viewer, "/admin/runs");
    let operations = state.operations.as_ref().ok_or_else(|| {
        viewer.fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server cannot run batches",
        )
    })?;
    operations
        .run_batch()
        .await
        .map_err(|e| viewer.fail(StatusCode::CONFLICT, e))?;
    Ok(Redirect::to("/admin/runs?done=batch-started").into_response())
}

pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    admin_only!(viewer, "/admin/dead-letters");
    let mut page = AdminPage::new(viewer.nav_after(&done), "dead-letters");
    match &state.operations {
        None => page.problem = Some("this server cannot read dead letters".into()),
        Some(operations) => match operations.dead_letters(500).await {
            Ok(letters) => page.letters = letters,
            Err(problem) => page.problem = Some(problem),
        },
    }
    Ok(render(&page))
}

pub(crate) async fn replay(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    admin_only!(viewer, "/admin/dead-letters");
    let operations = state.operations.as_ref().ok_or_else(|| {
        viewer.fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server cannot replay dead letters",
        )
    })?;
    let (resent, invalid) = operations
        .replay_dead_letters()
        .await
        .map_err(|e| viewer.fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    tracing::info!(
        "dead letters replayed from the admin page: {resent} re-sent, {invalid} still invalid"
    );
    Ok(Redirect::to(&format!(
        "/admin/dead-letters?done=replayed&resent={resent}&invalid={invalid}"
    ))
    .into_response())
}

pub(crate) async fn models(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    admin_only!(viewer, "/admin/models");
    let mut page = AdminPage::new(viewer.nav(), "models");
    if let Some(operations) = &state.operations {
        page.models = operations
            .model_versions(100)
            .await
            .map_err(|e| viewer.fail(StatusCode::SERVICE_UNAVAILABLE, e))?
            .into_iter()
            .map(|m: ModelRecord| ModelView {
                name: m.name,
                version: m.version,
                created_at: m.created_at,
                card: m.card.to_string(),
            })
            .collect();
    }
    Ok(render(&page))
}
