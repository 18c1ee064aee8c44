//! The public pages and the account pages.

use super::auth;
use super::charts;
use super::{CsrfOnly, Done, Nav, PageError, Viewer, now, render, set_cookie};
use crate::AppState;
use crate::params::{MOVIE_LIST_PARAMS, Params, path_id};
use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use movierec_store::{MovieFilter, MovieRow, MovieSort, NewAccount, Page, TopRow};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A movie as the tables show it.
pub(crate) struct MovieView {
    pub movie_id: u64,
    pub title: String,
    pub genres: String,
    pub year: String,
    pub avg_rating: String,
    pub rating_count: u64,
    pub note: String,
}

impl MovieView {
    fn from_row(movie: &MovieRow, note: String) -> Self {
        Self {
            movie_id: movie.movie_id,
            title: movie.title.clone(),
            genres: movie.genres.join(", "),
            year: movie.year.map(|y| y.to_string()).unwrap_or_default(),
            avg_rating: format!("{:.2}", movie.avg_rating),
            rating_count: movie.rating_count,
            note,
        }
    }

    fn from_top(row: &TopRow) -> Self {
        Self {
            movie_id: row.movie_id,
            title: row.title.clone(),
            genres: row.genres.join(", "),
            year: row.year.map(|y| y.to_string()).unwrap_or_default(),
            avg_rating: format!("{:.2}", row.avg_rating),
            rating_count: row.rating_count,
            note: format!("#{} · score {:.3}", row.rank, row.recommendation_score),
        }
    }

    /// From an item of the recommendations API (any of its sources).
    fn from_json(item: &Value) -> Option<Self> {
        let genres = item["genres"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let score = item["score"]
            .as_f64()
            .or_else(|| item["recommendation_score"].as_f64())
            .unwrap_or_default();
        Some(Self {
            movie_id: item["movie_id"].as_u64()?,
            title: item["title"].as_str()?.to_string(),
            genres,
            year: item["year"]
                .as_i64()
                .map(|y| y.to_string())
                .unwrap_or_default(),
            avg_rating: format!("{:.2}", item["avg_rating"].as_f64().unwrap_or_default()),
            rating_count: item["rating_count"].as_u64().unwrap_or_default(),
            note: format!("score {score:.3}"),
        })
    }
}

pub(crate) struct ForYou {
    pub source: String,
    pub explanation: String,
    pub rows: Vec<MovieView>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    nav: Nav,
    for_you: Option<ForYou>,
    top: Vec<MovieView>,
    last_batch: Option<String>,
}

pub(crate) async fn home(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let (top, _) = state
        .serving
        .top(
            &MovieFilter::default(),
            Page {
                page: 1,
                page_size: 10,
            },
        )
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let last_batch = state
        .serving
        .batch_runs(1)
        .await
        .map_err(|e| viewer.unavailable(e))?
        .into_iter()
        .next()
        .map(|run| run.finished_at);
    let for_you = match &viewer.account {
        None => None,
        Some(account) => {
            let list = crate::api::recommendations_for(&state, account.user_id, 10)
                .await
                .map_err(|e| viewer.fail(e.status, e.message))?;
            let explanation = match list.source {
                "fold-in" => format!(
                    "Personalized from your {} ratings by the {} model (version {}), computed just now.",
                    list.rated,
                    list.extra["model"].as_str().unwrap_or("ials"),
                    list.extra["model_version"].as_str().unwrap_or("?")
                ),
                "batch" => "Personalized by the last batch's model.".to_string(),
                _ => format!(
                    "Not personal yet ({}): these are the most popular movies you have not rated. Rate a few to change that.",
                    list.extra["fallback_reason"].as_str().unwrap_or("no model")
                ),
            };
            Some(ForYou {
                source: list.source.to_string(),
                explanation,
                rows: list.items.iter().filter_map(MovieView::from_json).collect(),
            })
        }
    };
    Ok(render(&Home {
        nav: viewer.nav_after(&done),
        for_you,
        top: top.iter().map(MovieView::from_top).collect(),
        last_batch,
    }))
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Default)]
struct BrowseForm {
    q: String,
    genre: String,
    year_from: String,
    year_to: String,
    min_count: String,
    sort: String,
}

#[derive(Template)]
#[template(path = "browse.html")]
struct Browse {
    nav: Nav,
    form: BrowseForm,
    genres: Vec<Choice>,
    sorts: Vec<Choice>,
    error: Option<String>,
    rows: Vec<MovieView>,
    total: u64,
    page: u64,
    total_pages: u64,
    prev: Option<String>,
    next: Option<String>,
}

const SORTS: [(&str, &str); 9] = [
    ("-count", "most rated"),
    ("-rating", "best average"),
    ("rating", "worst average"),
    ("title", "title A–Z"),
    ("-title", "title Z–A"),
    ("-year", "newest"),
    ("year", "oldest"),
    ("count", "least rated"),
    ("id", "movie id"),
];

pub(crate) async fn browse(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    // An empty field in the form means "any".
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let form = BrowseForm {
        q: value("q"),
        genre: value("genre"),
        year_from: value("year_from"),
        year_to: value("year_to"),
        min_count: value("min_count"),
        sort: value("sort"),
    };
    let parsed = Params::new(pairs.clone(), &MOVIE_LIST_PARAMS).and_then(|params| {
        Ok((
            params.filter()?,
            params.sort(MovieSort::CountDesc)?,
            params.page()?,
        ))
    });
    let genres = state
        .web_cache
        .genres(&state)
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let sort = if form.sort.is_empty() {
        "-count"
    } else {
        form.sort.as_str()
    };
    let sorts = SORTS
        .iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
            selected: *value == sort,
        })
        .collect();
    let genres = genres
        .into_iter()
        .map(|genre| Choice {
            selected: genre.eq_ignore_ascii_case(&form.genre),
            label: genre.clone(),
            value: genre,
        })
        .collect();
    let mut page = Browse {
        nav: viewer.nav(),
        form,
        genres,
        sorts,
        error: None,
        rows: Vec::new(),
        total: 0,
        page: 1,
        total_pages: 0,
        prev: None,
        next: None,
    };
    let (filter, sort, paging) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            page.error = Some(error.message);
            return Ok((StatusCode::BAD_REQUEST, render(&page)).into_response());
        }
    };
    let (rows, total) = state
        .serving
        .movies(&filter, sort, paging)
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let total_pages = total.div_ceil(paging.page_size);
    // Pagination links keep every filter: the same pairs, another page.
    let link = |target: u64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs.iter().filter(|(n, _)| n != "page") {
            query.append_pair(name, value);
        }
        query.append_pair("page", &target.to_string());
        format!("/movies?{}", query.finish())
    };
    page.prev = (paging.page > 1).then(|| link(paging.page - 1));
    page.next = (paging.page < total_pages).then(|| link(paging.page + 1));
    page.rows = rows
        .iter()
        .map(|m| MovieView::from_row(m, String::new()))
        .collect();
    page.total = total;
    page.page = paging.page;
    page.total_pages = total_pages;
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "movie.html")]
struct MoviePage {
    nav: Nav,
    movie: MovieView,
    std_dev: String,
    rank: String,
    score: String,
    your_rating: Option<String>,
    stars: Vec<String>,
    distribution: String,
    similar: Vec<MovieView>,
}

pub(crate) async fn movie(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let movie_id =
        path_id("id", &id).map_err(|e| viewer.fail(StatusCode::BAD_REQUEST, e.message))?;
    let (movie, top) = state
        .serving
        .movie(movie_id)
        .await
        .map_err(|e| viewer.unavailable(e))?
        .ok_or_else(|| viewer.fail(StatusCode::NOT_FOUND, format!("movie {movie_id} not found")))?;
    let similar = state
        .serving
        .similar_movies(movie_id, 10)
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let your_rating = match (&viewer.account, &state.ratings) {
        (Some(account), Some(source)) => source
            .user_ratings(account.user_id)
            .await
            .map_err(|e| viewer.unavailable(e))?
            .into_iter()
            .find(|(m, _)| *m == movie_id)
            .map(|(_, r)| format!("{r:.1}")),
        _ => None,
    };
    let distribution = match &state.activity {
        Some(activity) => match activity.movie_distribution(movie_id).await {
            Some(counts) => charts::bars(
                &counts
                    .iter()
                    .map(|(r, c)| (format!("{r:.1}"), *c))
                    .collect::<Vec<_>>(),
                "No ratings yet.",
            ),
            None => charts::bars(&[], "This storage mode keeps no per-movie distribution."),
        },
        None => charts::bars(&[], "This storage mode keeps no per-movie distribution."),
    };
    Ok(render(&MoviePage {
        nav: viewer.nav_after(&done),
        std_dev: format!("{:.2}", movie.std_dev),
        rank: top
            .as_ref()
            .map(|t| format!("#{}", t.rank))
            .unwrap_or_else(|| "not ranked".into()),
        score: top
            .as_ref()
            .map(|t| format!("{:.4}", t.recommendation_score))
            .unwrap_or_default(),
        movie: MovieView::from_row(&movie, String::new()),
        your_rating,
        stars: (1..=10)
            .map(|h| format!("{:.1}", f64::from(h) / 2.0))
            .collect(),
        distribution,
        similar: similar
            .iter()
            .map(|s| MovieView::from_row(&s.movie, format!("similarity {:.3}", s.score)))
            .collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct RateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rating: String,
}

pub(crate) async fn rate(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Form(form): Form<RateForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let Some(account) = &viewer.account else {
        return Ok(Redirect::to(&format!("/login?next=/movies/{id}")).into_response());
    };
    let movie_id =
        path_id("id", &id).map_err(|e| viewer.fail(StatusCode::BAD_REQUEST, e.message))?;
    if state
        .serving
        .movie(movie_id)
        .await
        .map_err(|e| viewer.unavailable(e))?
        .is_none()
    {
        return Err(viewer.fail(StatusCode::NOT_FOUND, format!("movie {movie_id} not found")));
    }
    let rating: f64 = form.rating.trim().parse().map_err(|_| {
        viewer.fail(
            StatusCode::BAD_REQUEST,
            format!("rating `{}` is not a number", form.rating),
        )
    })?;
    // The same validation as every other way in: one event, one set of rules.
    let payload = serde_json::json!({
        "user_id": account.user_id,
        "movie_id": movie_id,
        "rating": rating,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string();
    let event = movierec_core::RatingEvent::from_json(payload.as_bytes())
        .map_err(|e| viewer.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    state
        .intake
        .submit(&event, payload.as_bytes())
        .await
        .map_err(|e| viewer.fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let done = if state.intake.queues() {
        "queued"
    } else {
        "rated"
    };
    Ok(Redirect::to(&format!("/movies/{movie_id}?done={done}")).into_response())
}

#[derive(Template)]
#[template(path = "auth.html")]
struct AuthPage {
    nav: Nav,
    heading: &'static str,
    action: &'static str,
    signup: bool,
    error: Option<String>,
    username: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct NextParam {
    next: Option<String>,
}

/// Only a local path: never an open redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.chars().all(|c| !c.is_control()) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

fn auth_page(
    viewer: &Viewer,
    signup: bool,
    error: Option<String>,
    username: String,
    next: String,
) -> AuthPage {
    AuthPage {
        nav: viewer.nav(),
        heading: if signup { "Sign up" } else { "Log in" },
        action: if signup { "/signup" } else { "/login" },
        signup,
        error,
        username,
        next,
    }
}

pub(crate) async fn login_form(
    Extension(viewer): Extension<Viewer>,
    Query(next): Query<NextParam>,
) -> Response {
    render(&auth_page(
        &viewer,
        false,
        None,
        String::new(),
        safe_next(next.next.as_deref()),
    ))
}

pub(crate) async fn signup_form(Extension(viewer): Extension<Viewer>) -> Response {
    render(&auth_page(&viewer, true, None, String::new(), "/".into()))
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    password2: Option<String>,
    next: Option<String>,
}

/// Starts a fresh session for `account`: a new token whatever the request
/// carried (no session fixation), the old session ended.
async fn start_session(
    state: &AppState,
    viewer: &Viewer,
    account_id: u64,
    to: &str,
) -> Result<Response, PageError> {
    if let Some(old) = &viewer.session {
        state
            .accounts
            .delete_session(old)
            .await
            .map_err(|e| viewer.unavailable(e))?;
    }
    let token = auth::new_token();
    let ttl = state.web.session_ttl;
    let created = now();
    state
        .accounts
        .create_session(
            &auth::hash_token(&token),
            account_id,
            &auth::new_token(),
            created,
            created + ttl.as_secs() as i64,
        )
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let mut response = Redirect::to(to).into_response();
    set_cookie(&mut response, &state.web, auth::SESSION_COOKIE, token, ttl);
    Ok(response)
}

fn with_done(path: &str, done: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}done={done}")
}

pub(crate) async fn login(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<Credentials>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let username = form.username.trim().to_string();
    let again = |status: StatusCode, message: String| {
        let page = auth_page(
            &viewer,
            false,
            Some(message),
            username.clone(),
            next.clone(),
        );
        Ok((status, render(&page)).into_response())
    };
    if let Err(wait) = state.limiter.check(&username, &viewer.client) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed logins: try again in {} minutes.",
                wait.div_ceil(60)
            ),
        );
    }
    let found = state
        .accounts
        .account_by_name(&username)
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let password = form.password.clone();
    let verified = tokio::task::spawn_blocking(move || match &found {
        Some((account, hash)) => auth::verify_password(&password, hash).then(|| account.clone()),
        None => {
            auth::burn_verify(&password);
            None
        }
    })
    .await
    .map_err(|e| viewer.unavailable(e))?;
    match verified {
        Some(account) => {
            state.limiter.succeeded(&username);
            start_session(&state, &viewer, account.id, &with_done(&next, "logged-in")).await
        }
        None => {
            state.limiter.failed(&username, &viewer.client);
            again(
                StatusCode::UNAUTHORIZED,
                "Wrong username or password.".into(),
            )
        }
    }
}

pub(crate) async fn signup(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<Credentials>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let username = form.username.trim().to_string();
    let again = |message: String| {
        let page = auth_page(&viewer, true, Some(message), username.clone(), "/".into());
        Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
    };
    if let Err(problem) = auth::check_new_credentials(&username, &form.password) {
        return again(format!("Cannot sign up: {problem}."));
    }
    if form.password2.as_deref() != Some(form.password.as_str()) {
        return again("Cannot sign up: the two passwords differ.".into());
    }
    let password = form.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| viewer.unavailable(e))?
        .map_err(|e| viewer.unavailable(e))?;
    let created = state
        .accounts
        .create_account(NewAccount {
            username: &username,
            password_hash: &hash,
            is_admin: false,
            user_id: None,
            now: now(),
        })
        .await;
    match created {
        Ok(account) => start_session(&state, &viewer, account.id, "/?done=welcome").await,
        Err(movierec_store::StoreError::Conflict(message)) => {
            again(format!("Cannot sign up: {message}."))
        }
        Err(error) => Err(viewer.unavailable(error)),
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    if let Some(session) = &viewer.session {
        state
            .accounts
            .delete_session(session)
            .await
            .map_err(|e| viewer.unavailable(e))?;
    }
    let mut response = Redirect::to("/?done=logged-out").into_response();
    set_cookie(
        &mut response,
        &state.web,
        auth::SESSION_COOKIE,
        String::new(),
        Duration::ZERO,
    );
    Ok(response)
}

/// The logged-in account, or a redirect to the login page coming back here.
pub(crate) fn require_login<'a>(
    viewer: &'a Viewer,
    here: &str,
) -> Result<&'a movierec_store::Account, Redirect> {
    viewer
        .account
        .as_ref()
        .ok_or_else(|| Redirect::to(&format!("/login?next={here}")))
}

#[derive(Template)]
#[template(path = "my_ratings.html")]
struct MyRatings {
    nav: Nav,
    user_id: u64,
    rows: Vec<MovieView>,
    new_token: Option<String>,
}

async fn my_ratings_page(
    state: &AppState,
    viewer: &Viewer,
    new_token: Option<String>,
) -> Result<Response, PageError> {
    let account = match require_login(viewer, "/me/ratings") {
        Ok(account) => account,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let rated = match &state.ratings {
        Some(source) => source
            .user_ratings(account.user_id)
            .await
            .map_err(|e| viewer.unavailable(e))?,
        None => Vec::new(),
    };
    let ids: Vec<u64> = rated.iter().map(|r| r.0).collect();
    let movies: std::collections::HashMap<u64, MovieRow> = state
        .serving
        .movies_by_id(&ids)
        .await
        .map_err(|e| viewer.unavailable(e))?
        .into_iter()
        .map(|m| (m.movie_id, m))
        .collect();
    let mut rows: Vec<MovieView> = rated
        .iter()
        .filter_map(|(id, rating)| {
            movies
                .get(id)
                .map(|m| MovieView::from_row(m, format!("you: {rating:.1}")))
        })
        .collect();
    rows.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(render(&MyRatings {
        nav: viewer.nav(),
        user_id: account.user_id,
        rows,
        new_token,
    }))
}

pub(crate) async fn my_ratings(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    my_ratings_page(&state, &viewer, None).await
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let account = match require_login(&viewer, "/me/ratings") {
        Ok(account) => account,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(viewer.fail(
            StatusCode::BAD_REQUEST,
            "a token needs a name of 1 to 64 characters",
        ));
    }
    let token = auth::new_token();
    state
        .accounts
        .create_api_token(&auth::hash_token(&token), account.id, name, now())
        .await
        .map_err(|e| viewer.unavailable(e))?;
    my_ratings_page(&state, &viewer, Some(token)).await
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    nav: Nav,
    counts: Vec<(&'static str, String)>,
    pipeline: Vec<String>,
    distribution: String,
    over_time: String,
    genres: String,
}

pub(crate) async fn stats(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    let stats = state
        .serving
        .stats()
        .await
        .map_err(|e| viewer.unavailable(e))?;
    let counts = vec![
        ("movies", stats.movies.to_string()),
        ("rated movies", stats.rated_movies.to_string()),
        ("users", stats.users.to_string()),
        ("ratings", stats.ratings.to_string()),
        (
            "average rating",
            stats
                .average_rating
                .map(|a| format!("{a:.2}"))
                .unwrap_or_else(|| "–".into()),
        ),
        ("ranked movies", stats.recommendations.to_string()),
    ];
    let mut pipeline = Vec::new();
    match &stats.last_batch {
        Some(run) => {
            let age = chrono::DateTime::parse_from_rfc3339(&run.finished_at)
                .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_minutes())
                .map(|m| format!("{m} minutes ago"))
                .unwrap_or_default();
            pipeline.push(format!(
                "Batch freshness: last run {} at {} ({age}), engine {}, {} ratings in {} ms.",
                run.status, run.finished_at, run.engine, run.ratings, run.duration_ms
            ));
        }
        None => pipeline.push("Batch freshness: no batch has run yet.".into()),
    }
    let mut kafka_seen = false;
    for probe in &state.dependencies {
        let info = match probe.check().await {
            Ok(info) => info,
            Err((info, _)) => info,
        };
        if probe.name() == "kafka" {
            kafka_seen = true;
            let consumer = &info["consumer"];
            pipeline.push(format!(
                "Kafka {}: consumer lag {} events, {} accepted and {} dead-lettered since start.",
                info["status"].as_str().unwrap_or("?"),
                consumer["consumer_lag"],
                consumer["events_accepted"],
                consumer["events_dead_lettered"],
            ));
        }
    }
    if !kafka_seen {
        pipeline.push(
            "Kafka is not enabled: ratings are validated and stored directly, so there is no consumer lag and no dead letters."
                .into(),
        );
    } else if let Some(operations) = &state.operations {
        match operations.dead_letters(10_000).await {
            Ok(letters) => pipeline.push(format!("Dead letters in the topic: {}.", letters.len())),
            Err(problem) => pipeline.push(format!("Dead letters: {problem}")),
        }
    }
    let over_time = match &state.activity {
        Some(activity) => match activity.ratings_per_month().await {
            Ok(months) => charts::line(&months, "No ratings yet."),
            Err(why) => charts::bars(&[], &why),
        },
        None => charts::bars(&[], "This storage mode cannot count ratings by month."),
    };
    Ok(render(&StatsPage {
        nav: viewer.nav(),
        counts,
        pipeline,
        distribution: charts::bars(
            &stats
                .rating_distribution
                .iter()
                .map(|(r, c)| (format!("{r:.1}"), *c))
                .collect::<Vec<_>>(),
            "No ratings yet.",
        ),
        over_time,
        genres: charts::hbars(
            &stats
                .top_genres
                .iter()
                .take(12)
                .cloned()
                .collect::<Vec<_>>(),
            "No rated movies yet.",
        ),
    }))
}
