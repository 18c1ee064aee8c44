//! The web application over HTTP, as a browser without JavaScript uses it:
//! accounts and sessions, the authorization of every route, CSRF, session
//! fixation, login rate limiting, API tokens, SQL-injection probes in every
//! filter, security headers and the OpenAPI document.

mod common;
use common::*;
use std::collections::BTreeMap;

/// A cookie-keeping client that does not follow redirects.
struct Client {
    base: String,
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

struct Reply {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Client {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Reply {
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Reply {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            set_cookies,
            headers: response.headers().clone(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&mut self, path: &str) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        let response = request.call().unwrap();
        self.take(response)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        let response = request.send_form(form.iter().copied()).unwrap();
        self.take(response)
    }

    /// The CSRF token of the page at `path`'s forms.
    fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path);
        csrf_in(&page.body).unwrap_or_else(|| panic!("no csrf field on {path}: {}", page.body))
    }

    fn login(&mut self, username: &str, password: &str) -> Reply {
        let csrf = self.csrf("/login");
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("next", "/"),
            ],
        )
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

const ADMIN_PASSWORD: &str = "admin password 1";
const USER_PASSWORD: &str = "alice password";

fn prepared_server(extra_env: &[(&str, String)]) -> (tempfile::TempDir, Server) {
    let work = workdir();
    run_ok(
        movierec(work.path())
            .args(["import", "movielens"])
            .arg(movielens("ml-latest-small")),
    );
    run_ok(movierec(work.path()).args(["batch", "run"]));
    run_ok(
        movierec(work.path())
            .args(["admin", "create-user", "root", "--admin"])
            .env("MOVIEREC_PASSWORD", ADMIN_PASSWORD),
    );
    let mut env = vec![("MOVIEREC_SERVING__OPEN_RATING_API", "false".to_string())];
    env.extend(extra_env.iter().cloned());
    let server = start(work.path(), &["serve"], &env);
    (work, server)
}

const PUBLIC_PAGES: [&str; 6] = ["/", "/movies", "/movies/1", "/stats", "/login", "/signup"];
const ACCOUNT_PAGES: [&str; 1] = ["/me/ratings"];
const ADMIN_PAGES: [&str; 5] = [
    "/admin",
    "/admin/users",
    "/admin/runs",
    "/admin/dead-letters",
    "/admin/models",
];
/// Every form target, with a harmless body (the CSRF token is added).
const ACCOUNT_POSTS: [(&str, &[(&str, &str)]); 2] = [
    ("/movies/1/rate", &[("rating", "4.0")]),
    ("/me/tokens", &[("name", "probe")]),
];
const ADMIN_POSTS: [(&str, &[(&str, &str)]); 3] = [
    ("/admin/users/1/role", &[("role", "admin")]),
    ("/admin/runs", &[]),
    ("/admin/dead-letters/replay", &[]),
];

fn with_csrf<'a>(csrf: &'a str, form: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(form);
    all
}

#[test]
fn accounts_sessions_authorization_csrf_and_tokens() {
    let (work, server) = prepared_server(&[]);
    let base = &server.base;

    // --- anonymous: public pages answer, the rest sends to the login page.
    let mut anonymous = Client::new(base);
    for path in PUBLIC_PAGES {
        let reply = anonymous.get(path);
        assert_eq!(reply.status, 200, "anonymous GET {path}");
        assert!(reply.body.contains("<html"), "{path} is a page");
    }
    for path in ACCOUNT_PAGES.iter().chain(&ADMIN_PAGES) {
        let reply = anonymous.get(path);
        assert_eq!(reply.status, 303, "anonymous GET {path}");
        assert_eq!(reply.location, format!("/login?next={path}"));
    }
    let csrf = anonymous.csrf("/login");
    for (path, form) in ACCOUNT_POSTS.iter().chain(&ADMIN_POSTS) {
        let reply = anonymous.post(path, form);
        assert_eq!(
            reply.status, 403,
            "anonymous POST {path} without a CSRF token"
        );
        let reply = anonymous.post(path, &with_csrf(&csrf, form));
        assert_eq!(reply.status, 303, "anonymous POST {path}");
        assert!(
            reply.location.starts_with("/login?next="),
            "{path}: {}",
            reply.location
        );
    }

    // --- security headers, on pages and on the API.
    for path in ["/", "/api/stats"] {
        let reply = anonymous.get(path);
        for header in [
            "content-security-policy",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
        ] {
            assert!(reply.headers.contains_key(header), "{path} lacks {header}");
        }
        assert_eq!(reply.headers["x-frame-options"], "DENY");
    }

    // --- sign up, with a session id planted beforehand (session fixation).
    let mut alice = Client::new(base);
    let planted = "ab".repeat(32);
    alice.cookies.insert("mr_session".into(), planted.clone());
    let csrf = alice.csrf("/signup");
    let bad = alice.post(
        "/signup",
        &[
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "short"),
            ("password2", "short"),
        ],
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("at least 8 characters"), "{}", bad.body);
    let signed_up = alice.post(
        "/signup",
        &[
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", USER_PASSWORD),
            ("password2", USER_PASSWORD),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    let session_cookie = signed_up
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mr_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            session_cookie.contains(attribute),
            "{session_cookie} lacks {attribute}"
        );
    }
    assert_ne!(
        alice.cookies["mr_session"], planted,
        "a fresh session id, never the planted one"
    );
    let mut attacker = Client::new(base);
    attacker.cookies.insert("mr_session".into(), planted);
    assert_eq!(
        attacker.get("/me/ratings").status,
        303,
        "the planted id opens nothing"
    );
    let page = alice.get("/me/ratings");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("0 movies rated"), "{}", page.body);
    let taken = Client::new(base).post("/signup", &[]);
    assert_eq!(taken.status, 403, "no CSRF token, no sign-up");

    // --- a normal user: 403 on every admin route, GET and POST.
    for path in ADMIN_PAGES {
        assert_eq!(alice.get(path).status, 403, "user GET {path}");
    }
    let csrf = alice.csrf("/me/ratings");
    for (path, form) in ADMIN_POSTS {
        assert_eq!(
            alice.post(path, &with_csrf(&csrf, form)).status,
            403,
            "user POST {path}"
        );
    }

    // --- CSRF: the session's token only; the anonymous one, a stale one,
    // or none is refused and changes nothing.
    for token in [
        "",
        "0".repeat(64).as_str(),
        &alice.cookies.get("mr_csrf").cloned().unwrap_or_default(),
    ] {
        let reply = alice.post("/movies/1/rate", &[("csrf", token), ("rating", "1.0")]);
        assert_eq!(reply.status, 403, "token {token:?}");
        assert!(reply.body.contains("CSRF"), "{}", reply.body);
    }
    assert!(alice.get("/me/ratings").body.contains("0 movies rated"));
    let rated = alice.post("/movies/1/rate", &[("csrf", &csrf), ("rating", "4.5")]);
    assert_eq!(rated.status, 303);
    assert_eq!(rated.location, "/movies/1?done=rated");
    let movie = alice.get(&rated.location);
    assert!(movie.body.contains("Your rating: 4.5"), "{}", movie.body);
    assert!(alice.get("/me/ratings").body.contains("1 movies rated"));
    let bad_rating = alice.post("/movies/1/rate", &[("csrf", &csrf), ("rating", "7")]);
    assert_eq!(bad_rating.status, 400);

    // --- API tokens: none is 401, a user's token posts only that user's ratings.
    let event = |user: u64| {
        format!(
            r#"{{"user_id": {user}, "movie_id": 2, "rating": 3.5, "timestamp": "2025-03-15T10:30:00Z"}}"#
        )
    };
    let api = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build();
    let api: ureq::Agent = api.into();
    let post_rating = |token: Option<&str>, body: String| {
        let mut request = api
            .post(format!("{base}/api/ratings"))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body).unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    };
    // root, created first by `admin create-user`, has the first account id.
    let alice_user_id = 1_000_000_002u64;
    let (status, body) = post_rating(None, event(alice_user_id));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let (status, _) = post_rating(Some(&"f".repeat(64)), event(alice_user_id));
    assert_eq!(status, 401);
    let tokens = alice.post("/me/tokens", &[("csrf", &csrf), ("name", "laptop")]);
    assert_eq!(tokens.status, 200);
    let at = tokens
        .body
        .find("id=\"new-token\">")
        .expect("the new token is shown")
        + 15;
    let alice_token = tokens.body[at..at + 64].to_string();
    let (status, body) = post_rating(Some(&alice_token), event(alice_user_id));
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_rating(Some(&alice_token), event(7));
    assert_eq!(status, 403, "{body}");
    let mut anonymous_me = api.get(format!("{base}/api/me")).call().unwrap();
    assert_eq!(anonymous_me.status().as_u16(), 401);
    assert!(
        anonymous_me
            .body_mut()
            .read_to_string()
            .unwrap()
            .contains("Bearer")
    );
    let me = api
        .get(format!("{base}/api/me"))
        .header("authorization", format!("Bearer {alice_token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(me.contains("\"username\":\"alice\""), "{me}");
    let admin_token = String::from_utf8(
        run_ok(movierec(work.path()).args(["admin", "create-token", "root"])).stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let (status, body) = post_rating(Some(&admin_token), event(7));
    assert_eq!(status, 201, "an admin token posts for any user: {body}");

    // --- an admin sees the admin area and changes a role.
    let mut root = Client::new(base);
    let logged_in = root.login("root", ADMIN_PASSWORD);
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    for path in ADMIN_PAGES {
        assert_eq!(root.get(path).status, 200, "admin GET {path}");
    }
    let users = root.get("/admin/users");
    assert!(users.body.contains("alice") && users.body.contains("root"));
    let csrf = root.csrf("/admin/users");
    let alice_account = users.body.find("/admin/users/2/role").is_some();
    assert!(alice_account, "alice is account 2: {}", users.body);
    let changed = root.post("/admin/users/2/role", &[("csrf", &csrf), ("role", "admin")]);
    assert_eq!(changed.status, 303);
    assert_eq!(alice.get("/admin").status, 200, "alice is an admin now");
    let own = root.post("/admin/users/1/role", &[("csrf", &csrf), ("role", "user")]);
    assert_eq!(own.status, 400, "an admin cannot demote themself");

    // --- logging out ends the session on the server, not just the cookie.
    let session = alice.cookies["mr_session"].clone();
    let csrf = alice.csrf("/me/ratings");
    assert_eq!(alice.post("/logout", &[("csrf", &csrf)]).status, 303);
    let mut replayed = Client::new(base);
    replayed.cookies.insert("mr_session".into(), session);
    assert_eq!(
        replayed.get("/me/ratings").status,
        303,
        "a logged-out session is dead"
    );

    // --- login rate limiting: after 5 failures even the right password waits.
    let mut guesser = Client::new(base);
    for attempt in 0..5 {
        let reply = guesser.login("root", &format!("wrong {attempt}"));
        assert_eq!(reply.status, 401, "attempt {attempt}");
        assert!(reply.body.contains("Wrong username or password"));
    }
    let blocked = guesser.login("root", ADMIN_PASSWORD);
    assert_eq!(blocked.status, 429);
    assert!(
        blocked.body.contains("Too many failed logins"),
        "{}",
        blocked.body
    );
    // An unknown name fails the same way as a wrong password.
    assert_eq!(Client::new(base).login("nobody", "whatever1").status, 401);
}

#[test]
fn sql_injection_probes_in_every_filter_and_form() {
    let (_work, server) = prepared_server(&[]);
    let base = &server.base;
    let (_, before) = get(base, "/api/stats");
    let probes = [
        "' OR '1'='1",
        "1' OR 1=1 --",
        "1; DROP TABLE app_movie; --",
        "%' UNION SELECT username, password_hash FROM app_user --",
        "\" OR \"\"=\"",
        "1 OR 1=1",
        "')) OR 1=1#",
        "%",
        "_",
        "\\",
    ];
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let mut client = Client::new(base);
    for probe in probes {
        let p = encode(probe);
        // Text filters are bound as values and matched literally: a title
        // search finds only titles holding the probe's characters, a genre
        // probe names no genre.
        let (status, found) = get(base, &format!("/api/movies?q={p}&page_size=100"));
        assert_eq!(status, 200, "q={probe}");
        for item in found["items"].as_array().unwrap() {
            let title = item["title"].as_str().unwrap().to_lowercase();
            assert!(
                title.contains(&probe.to_lowercase()),
                "q={probe} matched {title}"
            );
        }
        let page = client.get(&format!("/movies?q={p}"));
        assert_eq!(page.status, 200, "/movies?q={probe}");
        assert!(
            page.body.contains(&format!(">{} movies", found["total"])),
            "the page agrees with the API"
        );
        for path in [
            format!("/api/movies?genre={p}"),
            format!("/api/recommendations/top?genre={p}"),
        ] {
            // Longer than a genre can be (50 characters): refused by name.
            let (status, body) = get(base, &path);
            match status {
                200 => assert_eq!(body["total"], 0, "{path} matched rows: {body}"),
                400 => assert_eq!(body["error"]["parameter"], "genre", "{path}"),
                other => panic!("{path}: status {other}"),
            }
        }
        let page = client.get(&format!("/movies?genre={p}"));
        assert!(
            (page.status == 200 && page.body.contains(">0 movies")) || page.status == 400,
            "/movies?genre={probe}: {}",
            page.status
        );
        // Numeric filters and paging: rejected by name, never passed on.
        for name in ["year_from", "year_to", "min_count", "page", "page_size"] {
            for path in [
                format!("/api/movies?{name}={p}"),
                format!("/api/recommendations/top?{name}={p}"),
                format!("/movies?{name}={p}"),
            ] {
                let reply = client.get(&path);
                assert_eq!(reply.status, 400, "{path}");
                assert!(reply.body.contains(name), "{path}: {}", reply.body);
            }
        }
        let reply = client.get(&format!("/api/movies?sort={p}"));
        assert_eq!(reply.status, 400, "sort {probe}");
        for path in [format!("/api/movies/{p}"), format!("/movies/{p}")] {
            let reply = client.get(&path);
            assert!(
                reply.status == 400 || reply.status == 404,
                "{path}: {}",
                reply.status
            );
        }
        // Forms: a probe as the username logs nobody in.
        let reply = client.login(probe, probe);
        assert!(
            reply.status == 401 || reply.status == 429,
            "login {probe}: {}",
            reply.status
        );
    }
    let (_, after) = get(base, "/api/stats");
    assert_eq!(before, after, "nothing changed or vanished");
    let (status, toy) = get(base, "/api/movies?q=toy%20story");
    assert_eq!(status, 200);
    assert!(
        toy["total"].as_u64().unwrap() >= 3,
        "ordinary search still works"
    );
}

#[test]
fn browse_keeps_filters_across_pages_and_openapi_covers_the_api() {
    let (_work, server) = prepared_server(&[]);
    let mut client = Client::new(&server.base);
    let first = client
        .get("/movies?genre=Comedy&year_from=1990&year_to=1999&min_count=10&sort=-rating&q=the");
    assert_eq!(first.status, 200);
    let at = first.body.find("id=\"next\"").expect("a next link");
    let href_at = first.body[..at].rfind("href=\"").unwrap() + 6;
    let next = first.body[href_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    for kept in [
        "genre=Comedy",
        "year_from=1990",
        "year_to=1999",
        "min_count=10",
        "sort=-rating",
        "q=the",
        "page=2",
    ] {
        assert!(next.contains(kept), "{next} lacks {kept}");
    }
    let second = client.get(&next);
    assert_eq!(second.status, 200);
    assert!(second.body.contains("page 2 of"), "{}", second.body);
    assert!(second.body.contains("id=\"prev\""));
    let bad = client.get("/movies?year_from=2000&year_to=1990");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("year_from"), "the error names the field");

    let (status, doc) = get(&server.base, "/api/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/metrics", "get"),
        ("/api/movies", "get"),
        ("/api/movies/{id}", "get"),
        ("/api/movies/{id}/similar", "get"),
        ("/api/recommendations/top", "get"),
        ("/api/users/{id}/recommendations", "get"),
        ("/api/users/{id}/features", "get"),
        ("/api/stats", "get"),
        ("/api/ratings", "post"),
        ("/api/me", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    assert_eq!(
        paths.len(),
        12,
        "every documented path is listed above: {:?}",
        paths.keys()
    );
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
    let movie = &doc["components"]["schemas"]["Movie"]["properties"];
    let (_, listed) = get(&server.base, "/api/movies?page_size=1");
    for key in listed["items"][0].as_object().unwrap().keys() {
        assert!(movie.get(key).is_some(), "Movie schema lacks {key}");
    }
}

/// A fresh database on the test server named by `env_var` (MySQL or PostgreSQL).
fn fresh_database(env_var: &str) -> String {
    let server = std::env::var(env_var).unwrap_or_else(|_| {
        panic!("{env_var} is not set: run the suite with `bash scripts/test.sh`, which starts MariaDB and PostgreSQL")
    });
    let server = server.trim_end_matches('/').to_string();
    let name = format!("movierec_web_{}_{}", std::process::id(), env_var.len());
    let admin_url = if server.starts_with("postgres") {
        server.clone()
    } else {
        format!("{server}/mysql")
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
        });
    match server.rsplit_once('/') {
        Some((base, _)) if server.starts_with("postgres") => format!("{base}/{name}"),
        _ => format!("{server}/{name}"),
    }
}

/// Accounts, sessions, roles and rating through the pages with the serving
/// database on MariaDB (as RDS MySQL) and on PostgreSQL.
#[test]
fn the_web_application_runs_on_mysql_and_postgres() {
    for env_var in ["MOVIEREC_TEST_MYSQL_URL", "MOVIEREC_TEST_POSTGRES_URL"] {
        let url = fresh_database(env_var);
        let work = workdir();
        let with_db = |command: &mut std::process::Command| {
            command.env("MOVIEREC_SERVING__DATABASE_URL", &url);
        };
        let mut import = movierec(work.path());
        with_db(
            import
                .args(["import", "movielens"])
                .arg(movielens("ml-latest-small")),
        );
        run_ok(&mut import);
        let mut batch = movierec(work.path());
        with_db(batch.args(["batch", "run"]));
        run_ok(&mut batch);
        let mut admin = movierec(work.path());
        with_db(
            admin
                .args(["admin", "create-user", "root", "--admin"])
                .env("MOVIEREC_PASSWORD", ADMIN_PASSWORD),
        );
        run_ok(&mut admin);
        let server = start(
            work.path(),
            &["serve"],
            &[
                ("MOVIEREC_SERVING__DATABASE_URL", url.clone()),
                ("MOVIEREC_SERVING__OPEN_RATING_API", "false".into()),
            ],
        );
        let (_, health) = get(&server.base, "/health");
        assert!(
            health["serving_database"]["url"]
                .as_str()
                .unwrap()
                .starts_with(&url[..5]),
            "{env_var}: {health}"
        );

        let mut alice = Client::new(&server.base);
        let csrf = alice.csrf("/signup");
        let signed_up = alice.post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
        );
        assert_eq!(signed_up.status, 303, "{env_var}: {}", signed_up.body);
        let csrf = alice.csrf("/movies/1");
        assert_eq!(
            alice
                .post("/movies/1/rate", &[("csrf", &csrf), ("rating", "3.5")])
                .status,
            303
        );
        assert!(
            alice.get("/me/ratings").body.contains("Toy Story"),
            "{env_var}"
        );
        assert_eq!(alice.get("/admin").status, 403, "{env_var}");

        let mut root = Client::new(&server.base);
        assert_eq!(root.login("root", ADMIN_PASSWORD).status, 303, "{env_var}");
        let users = root.get("/admin/users");
        assert_eq!(users.status, 200);
        assert!(users.body.contains("alice"), "{env_var}");
        let csrf = root.csrf("/admin/users");
        assert_eq!(
            root.post("/admin/users/2/role", &[("csrf", &csrf), ("role", "admin")])
                .status,
            303
        );
        assert_eq!(
            alice.get("/admin").status,
            200,
            "{env_var}: alice is an admin now"
        );
        assert_eq!(root.get("/admin/runs").status, 200);
        assert!(
            root.get("/admin/runs").body.contains("succeeded"),
            "{env_var}: the import's batch run"
        );
    }
}

/// With Kafka: the stats page shows the consumer and the dead letters, and
/// an admin lists and replays them from the admin area.
#[test]
fn admin_lists_and_replays_dead_letters_and_stats_show_the_stream() {
    use common::streams::{bootstrap, runtime, stream};
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let work = workdir();
    let s = stream(work.path(), "webdlq", 1, "webdlq", 100);
    let config = s.config.display().to_string();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    runtime().block_on(async {
        for payload in [
            r#"{"user_id": 5, "movie_id": 7, "rating": 4.5, "timestamp": 1}"#,
            r#"{"user_id": 5, "movie_id": 6, "rating": 5.5, "timestamp": 1}"#,
            "{oops",
        ] {
            producer
                .send(
                    FutureRecord::to(&s.topic).key("5").payload(payload),
                    std::time::Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
    run_ok(
        movierec(work.path())
            .args([
                "--config",
                &config,
                "admin",
                "create-user",
                "root",
                "--admin",
            ])
            .env("MOVIEREC_PASSWORD", ADMIN_PASSWORD),
    );
    let server = start(
        work.path(),
        &["--config", &config, "serve"],
        &[("MOVIEREC_SERVING__OPEN_RATING_API", "false".into())],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, health) = get(&server.base, "/health");
        if health["kafka"]["consumer"]["events_dead_lettered"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the consumer did not dead-letter the two invalid events: {health}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    let mut root = Client::new(&server.base);
    assert_eq!(root.login("root", ADMIN_PASSWORD).status, 303);
    let stats = root.get("/stats");
    assert!(stats.body.contains("consumer lag"), "{}", stats.body);
    assert!(
        stats.body.contains("1 accepted and 2 dead-lettered"),
        "{}",
        stats.body
    );
    assert!(
        stats.body.contains("Dead letters in the topic: 2."),
        "{}",
        stats.body
    );
    let letters = root.get("/admin/dead-letters");
    assert_eq!(letters.status, 200);
    for reason in ["bad_rating", "bad_json", "{oops"] {
        assert!(letters.body.contains(reason), "{reason}: {}", letters.body);
    }
    let csrf = root.csrf("/admin/dead-letters");
    let replayed = root.post("/admin/dead-letters/replay", &[("csrf", &csrf)]);
    assert_eq!(replayed.status, 303);
    let page = root.get(&replayed.location);
    assert!(
        page.body
            .contains("Replay: 0 re-sent to their topic, 2 still invalid"),
        "nothing is valid by today's rules: {}",
        page.body
    );
    let mut alice = Client::new(&server.base);
    let csrf = alice.csrf("/signup");
    alice.post(
        "/signup",
        &[
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", USER_PASSWORD),
            ("password2", USER_PASSWORD),
        ],
    );
    let csrf = alice.csrf("/");
    assert_eq!(alice.get("/admin/dead-letters").status, 403);
    assert_eq!(
        alice
            .post("/admin/dead-letters/replay", &[("csrf", &csrf)])
            .status,
        403
    );
}
