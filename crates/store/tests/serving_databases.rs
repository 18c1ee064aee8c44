//! The serving database behaves the same on SQLite, MariaDB/MySQL and
//! PostgreSQL. MySQL and PostgreSQL come from real servers: `scripts/test.sh`
//! starts them and sets MOVIEREC_TEST_MYSQL_URL / MOVIEREC_TEST_POSTGRES_URL.

use movierec_core::{
    BayesianParams, EventTime, FeatureAccumulator, Movie, MovieCounts, Rating, bayesian_top_n,
};
use movierec_store::{
    AccountStore, BatchRun, BatchStage, FIRST_ACCOUNT_USER_ID, MovieFilter, MovieSort, NewAccount,
    Page, PublishInput, ServingDb, ServingStore, StoreError,
};
use sqlx::Connection;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database on the server named by `env_var`.
async fn fresh_server_db(env_var: &str) -> (String, String) {
    let server = std::env::var(env_var).unwrap_or_else(|_| {
        panic!(
            "{env_var} is not set: run the suite with `bash scripts/test.sh`, which starts MariaDB and \
             PostgreSQL on 127.0.0.1, or point {env_var} at a server URL whose user may create databases"
        )
    });
    let server = server.trim_end_matches('/').to_string();
    let name = format!(
        "movierec_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::any::install_default_drivers();
    let admin_url = if server.starts_with("postgres") {
        server.clone()
    } else {
        format!("{server}/mysql")
    };
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let base = match server.rsplit_once('/') {
        Some((base, _)) if server.starts_with("postgres") => base.to_string(),
        _ => server.clone(),
    };
    (format!("{base}/{name}"), name)
}

fn movie(id: u64, title: &str, genres: &str) -> Movie {
    Movie::new(id, title, genres)
}

fn acc(ratings: &[f64], last: i64) -> FeatureAccumulator {
    let mut acc = FeatureAccumulator::default();
    for r in ratings {
        acc.add(Rating::from_f64(*r).unwrap(), EventTime(last));
    }
    acc
}

async fn exercise(db: ServingDb) {
    let movies = vec![
        movie(
            1,
            "Toy Story (1995)",
            "Adventure|Animation|Children|Comedy|Fantasy",
        ),
        movie(2, "Jumanji (1995)", "Adventure|Children|Fantasy"),
        movie(3, "100% Kid_Movie 'Quoted' (2001)", "Comedy"),
        movie(4, "No Year Documentary", "Documentary"),
        movie(5, "Café, The (1999)", "Drama|Romance"),
        movie(6, "Never Rated (2010)", "Drama"),
    ];
    let movie_features: Vec<(u64, FeatureAccumulator)> = vec![
        (1, acc(&[5.0, 4.5, 4.0, 5.0], 964_982_703_000)),
        (2, acc(&[3.0, 3.5, 2.0], 964_982_000_000)),
        (3, acc(&[4.0, 4.0, 4.0], 1_000_000_000_000)),
        (4, acc(&[1.0, 2.0, 1.5], 1_100_000_000_000)),
        (5, acc(&[4.5, 4.5, 5.0], 1_200_000_000_000)),
    ];
    let user_features = vec![(7, acc(&[4.0, 2.5], 1_300_000_000_000))];
    let counts: Vec<MovieCounts> = movie_features
        .iter()
        .map(|(id, a)| MovieCounts {
            movie_id: *id,
            count: a.count,
            sum_half: a.sum_half,
        })
        .collect();
    let top = bayesian_top_n(
        &counts,
        BayesianParams {
            min_ratings: 3,
            top_n: 10,
        },
    );
    let mut histogram = [0u64; 11];
    histogram[8] = 5;
    histogram[10] = 3;
    db.publish(PublishInput {
        movies: &movies,
        movie_features: &movie_features,
        user_features: &user_features,
        top: &top,
        histogram: &histogram,
    })
    .await
    .expect("publish");
    db.ping().await.unwrap();

    // Top list: exact scores, ranks in order, filters.
    let page = Page {
        page: 1,
        page_size: 10,
    };
    let (rows, total) = db.top(&MovieFilter::default(), page).await.unwrap();
    assert_eq!(total, top.movies.len() as u64);
    for (row, expected) in rows.iter().zip(&top.movies) {
        assert_eq!(row.movie_id, expected.movie_id);
        assert_eq!(
            row.recommendation_score.to_bits(),
            expected.score.to_bits(),
            "scores are stored exactly"
        );
    }
    assert_eq!(
        rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
        (1..=rows.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        rows[0].popularity_score, 1.0,
        "the most-rated movie has popularity 1"
    );
    let (children, _) = db
        .top(
            &MovieFilter {
                genre: Some("children".into()),
                ..Default::default()
            },
            page,
        )
        .await
        .unwrap();
    let ids: Vec<u64> = children.iter().map(|r| r.movie_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&1) && ids.contains(&2));
    let (paged, total) = db
        .top(
            &MovieFilter::default(),
            Page {
                page: 2,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(paged[0].rank, 3);

    // Movies: search is literal (LIKE wildcards and quotes are data), genres exact.
    let (rows, total) = db
        .movies(
            &MovieFilter {
                q: Some("100% kid_".into()),
                ..Default::default()
            },
            MovieSort::Id,
            page,
        )
        .await
        .unwrap();
    assert_eq!((total, rows[0].movie_id), (1, 3));
    for probe in ["%", "_", "' OR '1'='1", "\"; DROP TABLE app_movie; --", "!"] {
        let (rows, _) = db
            .movies(
                &MovieFilter {
                    q: Some(probe.into()),
                    ..Default::default()
                },
                MovieSort::Id,
                page,
            )
            .await
            .unwrap();
        assert!(
            rows.iter()
                .all(|r| r.title.to_lowercase().contains(&probe.to_lowercase())),
            "{probe}"
        );
        let (rows, _) = db
            .movies(
                &MovieFilter {
                    genre: Some(probe.into()),
                    ..Default::default()
                },
                MovieSort::Id,
                page,
            )
            .await
            .unwrap();
        assert!(rows.is_empty(), "{probe}");
    }
    let (rows, _) = db
        .movies(
            &MovieFilter {
                q: Some("café".into()),
                ..Default::default()
            },
            MovieSort::Id,
            page,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (rows, total) = db
        .movies(
            &MovieFilter {
                genre: Some("Drama".into()),
                ..Default::default()
            },
            MovieSort::Id,
            page,
        )
        .await
        .unwrap();
    assert_eq!(
        (total, rows.iter().map(|r| r.movie_id).collect::<Vec<_>>()),
        (2, vec![5, 6])
    );
    let (rows, _) = db
        .movies(&MovieFilter::default(), MovieSort::YearDesc, page)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.movie_id).collect::<Vec<_>>(),
        vec![6, 3, 5, 1, 2, 4],
        "no year sorts last"
    );
    let (rows, _) = db
        .movies(
            &MovieFilter {
                year_from: Some(1996),
                year_to: Some(2005),
                min_count: Some(1),
                ..Default::default()
            },
            MovieSort::RatingDesc,
            page,
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.movie_id).collect::<Vec<_>>(),
        vec![5, 3]
    );

    // One movie, with and without a recommendation; features exact.
    let (toy, rec) = db.movie(1).await.unwrap().unwrap();
    assert_eq!(toy.genres.len(), 5);
    assert_eq!(toy.year, Some(1995));
    assert_eq!(toy.rating_count, 4);
    assert_eq!(toy.avg_rating, 4.625);
    assert_eq!(toy.last_update.as_deref(), Some("2000-07-30T18:45:03Z"));
    assert!(rec.is_some());
    let (never, rec) = db.movie(6).await.unwrap().unwrap();
    assert_eq!((never.rating_count, never.last_update), (0, None));
    assert!(rec.is_none());
    assert!(db.movie(999).await.unwrap().is_none());

    let features = db.user_features(7).await.unwrap().unwrap();
    assert_eq!((features.rating_count, features.avg_rating), (2, 3.25));
    assert!(db.user_features(8).await.unwrap().is_none());

    let stats = db.stats().await.unwrap();
    assert_eq!(
        (stats.movies, stats.rated_movies, stats.users, stats.ratings),
        (6, 5, 1, 8)
    );
    assert_eq!(stats.average_rating, Some((5.0 * 4.0 + 3.0 * 5.0) / 8.0));
    assert_eq!(stats.top_genres[0], ("Adventure".to_string(), 2));

    // Re-publishing replaces the list: nothing of the old one remains.
    let smaller = bayesian_top_n(
        &counts,
        BayesianParams {
            min_ratings: 3,
            top_n: 2,
        },
    );
    db.publish(PublishInput {
        movies: &movies,
        movie_features: &movie_features,
        user_features: &user_features,
        top: &smaller,
        histogram: &histogram,
    })
    .await
    .unwrap();
    let (rows, total) = db.top(&MovieFilter::default(), page).await.unwrap();
    assert_eq!((rows.len(), total), (2, 2));
    assert_eq!(
        db.stats().await.unwrap().movies,
        6,
        "movies are upserted, not duplicated"
    );

    let run = BatchRun {
        started_at: "2026-11-22T10:00:00Z".into(),
        finished_at: "2026-11-22T10:00:01Z".into(),
        engine: "embedded".into(),
        source: "test".into(),
        status: "succeeded".into(),
        records_read: 8,
        ratings: 8,
        users: 1,
        movies: 5,
        ranked: 2,
        global_mean: top.global_mean,
        duration_ms: 1000,
        error: None,
        stages: vec![
            BatchStage {
                name: "read".into(),
                rows: 8,
                ms: 12,
                detail: "bronze date=2026-11-21 (8 events in 1 objects)".into(),
            },
            BatchStage {
                name: "publish".into(),
                rows: 7,
                ms: 30,
                detail: String::new(),
            },
        ],
    };
    db.record_run(&run).await.unwrap();
    db.record_run(&BatchRun {
        status: "failed".into(),
        error: Some("boom".into()),
        ..run.clone()
    })
    .await
    .unwrap();
    let runs = db.batch_runs(10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].error.as_deref(), Some("boom"), "newest first");
    assert_eq!(runs[1], run);
    accounts(&db).await;
}

/// Accounts, sessions and API tokens: the same on every dialect.
async fn accounts(db: &ServingDb) {
    let new = |username: &'static str, user_id: Option<u64>| NewAccount {
        username,
        password_hash: "$argon2id$fake",
        is_admin: false,
        user_id,
        now: 1_700_000_000,
    };
    let alice = db.create_account(new("alice", None)).await.unwrap();
    assert_eq!(alice.user_id, FIRST_ACCOUNT_USER_ID);
    assert!(!alice.is_admin);
    let bob = db.create_account(new("bob", None)).await.unwrap();
    assert_eq!(bob.user_id, FIRST_ACCOUNT_USER_ID + 1, "next free id");
    let linked = db.create_account(new("ml-user-1", Some(1))).await.unwrap();
    assert_eq!(linked.user_id, 1);
    let taken = db.create_account(new("alice", None)).await.unwrap_err();
    assert!(
        matches!(&taken, StoreError::Conflict(m) if m.contains("alice")),
        "{taken}"
    );
    let taken = db.create_account(new("carol", Some(1))).await.unwrap_err();
    assert!(
        matches!(&taken, StoreError::Conflict(m) if m.contains("ml-user-1")),
        "{taken}"
    );
    // Names are bound, never spliced: a quote is just a character.
    assert!(db.account_by_name("' OR '1'='1").await.unwrap().is_none());
    let (found, hash) = db.account_by_name("alice").await.unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (alice.clone(), "$argon2id$fake"));

    assert!(db.set_admin(bob.id, true).await.unwrap());
    assert!(
        !db.set_admin(999_999, true).await.unwrap(),
        "no such account"
    );
    let all = db.accounts().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|a| (a.username.as_str(), a.is_admin))
            .collect::<Vec<_>>(),
        [("alice", false), ("bob", true), ("ml-user-1", false)]
    );

    let now = 1_700_000_100;
    db.create_session("s1", alice.id, "csrf1", now, now + 60)
        .await
        .unwrap();
    let session = db.session("s1", now + 10).await.unwrap().unwrap();
    assert_eq!(
        (session.account.id, session.csrf.as_str()),
        (alice.id, "csrf1")
    );
    assert!(
        db.session("s1", now + 61).await.unwrap().is_none(),
        "expired"
    );
    assert!(db.session("nope", now).await.unwrap().is_none());
    // A new session sweeps the expired ones.
    db.create_session("s2", bob.id, "csrf2", now + 120, now + 500)
        .await
        .unwrap();
    assert!(db.session("s1", now).await.unwrap().is_none(), "swept");
    db.delete_session("s2").await.unwrap();
    assert!(
        db.session("s2", now + 130).await.unwrap().is_none(),
        "logged out"
    );

    db.create_api_token("t1", bob.id, "script", now)
        .await
        .unwrap();
    assert_eq!(
        db.api_token_account("t1").await.unwrap().unwrap().username,
        "bob"
    );
    assert!(db.api_token_account("t2").await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/serving.db", dir.path().display());
    let db = ServingDb::connect(&url).await.unwrap();
    exercise(db).await;
    // Connecting again re-runs nothing and keeps the data.
    let again = ServingDb::connect(&url).await.unwrap();
    assert_eq!(again.stats().await.unwrap().movies, 6);
}

#[tokio::test]
async fn mysql() {
    let (url, _) = fresh_server_db("MOVIEREC_TEST_MYSQL_URL").await;
    let db = ServingDb::connect(&url).await.unwrap();
    exercise(db).await;
    ServingDb::connect(&url)
        .await
        .expect("migrations are idempotent");
}

#[tokio::test]
async fn postgres() {
    let (url, _) = fresh_server_db("MOVIEREC_TEST_POSTGRES_URL").await;
    let db = ServingDb::connect(&url).await.unwrap();
    exercise(db).await;
    ServingDb::connect(&url)
        .await
        .expect("migrations are idempotent");
}

#[tokio::test]
async fn unreachable_database_is_named() {
    let error = ServingDb::connect("postgres://app:secret@127.0.0.1:1/none")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postgres://app:***@127.0.0.1:1/none"),
        "{error}"
    );
    assert!(!error.contains("secret"));
}
