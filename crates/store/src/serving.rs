use crate::dialect::redact;
use crate::{
    Context, Dialect, Result, ServingStore, StoreError, chunk_query, db_int as i,
    write_on_own_connection,
};
use async_trait::async_trait;
use movierec_core::scoring::{genre_match_score, genre_shares, popularity_score};
use movierec_core::{EventTime, FeatureAccumulator, Features, Movie, TopN};
use serde::Serialize;
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr};
use std::collections::HashMap;
use std::time::Duration;

/// Rows per multi-row INSERT, within every dialect's bound-parameter limit.
const ROWS_PER_INSERT: usize = 500;

/// The serving database: SQLite, MySQL or PostgreSQL by URL.
#[derive(Debug, Clone)]
pub struct ServingDb {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
    url: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MovieFilter {
    /// Case-insensitive substring of the title.
    pub q: Option<String>,
    /// One genre, matched exactly (case-insensitive).
    pub genre: Option<String>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    pub min_count: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MovieSort {
    #[default]
    Id,
    Title,
    TitleDesc,
    Year,
    YearDesc,
    Rating,
    RatingDesc,
    Count,
    CountDesc,
}

impl MovieSort {
    pub const NAMES: &'static str =
        "id, title, -title, year, -year, rating, -rating, count, -count";

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "title" => Self::Title,
            "-title" => Self::TitleDesc,
            "year" => Self::Year,
            "-year" => Self::YearDesc,
            "rating" => Self::Rating,
            "-rating" => Self::RatingDesc,
            "count" => Self::Count,
            "-count" => Self::CountDesc,
            _ => return None,
        })
    }

    /// Movies without a year sort last either way, the same in every dialect.
    fn order_by(self) -> &'static str {
        match self {
            Self::Id => "movie_id",
            Self::Title => "title, movie_id",
            Self::TitleDesc => "title DESC, movie_id",
            Self::Year => "(year IS NULL), year, movie_id",
            Self::YearDesc => "(year IS NULL), year DESC, movie_id",
            Self::Rating => "avg_rating, movie_id",
            Self::RatingDesc => "avg_rating DESC, movie_id",
            Self::Count => "rating_count, movie_id",
            Self::CountDesc => "rating_count DESC, movie_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub page: u64,
    pub page_size: u64,
}

impl Page {
    fn offset(self) -> i64 {
        ((self.page.saturating_sub(1)).saturating_mul(self.page_size)).min(i64::MAX as u64) as i64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovieRow {
    pub movie_id: u64,
    pub title: String,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    pub avg_rating: f64,
    pub rating_count: u64,
    pub std_dev: f64,
    pub last_update: Option<String>,
}

/// A movie with a score: a personalized recommendation or a similar movie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredRow {
    pub score: f64,
    #[serde(flatten)]
    pub movie: MovieRow,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopRow {
    /// 1-based position in the whole published list.
    pub rank: u64,
    pub movie_id: u64,
    pub title: String,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    pub recommendation_score: f64,
    pub popularity_score: f64,
    pub genre_match_score: f64,
    pub avg_rating: f64,
    pub rating_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRun {
    pub started_at: String,
    pub finished_at: String,
    pub engine: String,
    pub source: String,
    pub status: String,
    pub records_read: u64,
    pub ratings: u64,
    pub users: u64,
    pub movies: u64,
    pub ranked: u64,
    pub global_mean: f64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// What each stage read or wrote, and how long it took, in order.
    pub stages: Vec<BatchStage>,
}

/// One stage of a batch run: `read`, `latest`, `features`, `gold`,
/// `write`, `spark-submit`, `publish`, …
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BatchStage {
    pub name: String,
    /// Rows the stage produced (or read, for `read`).
    pub rows: u64,
    pub ms: u64,
    /// Inputs, outputs or anything else worth keeping, for people.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub movies: u64,
    pub rated_movies: u64,
    pub users: u64,
    pub ratings: u64,
    pub average_rating: Option<f64>,
    /// (rating, count) for 0.5 … 5.0.
    pub rating_distribution: Vec<(f64, u64)>,
    /// Genres by number of rated movies, most first.
    pub top_genres: Vec<(String, u64)>,
    pub recommendations: u64,
    pub last_batch: Option<BatchRun>,
}

/// Everything one batch publishes, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct PublishInput<'a> {
    pub movies: &'a [Movie],
    /// Ascending movie id.
    pub movie_features: &'a [(u64, FeatureAccumulator)],
    pub user_features: &'a [(u64, FeatureAccumulator)],
    pub top: &'a TopN,
    /// Ratings by half stars (index 1..=10).
    pub histogram: &'a [u64; 11],
}

/// What a batch publishes of its personalized models.
pub struct ModelsPublish<'a> {
    /// Per user, the recommended movies with their scores, best first.
    pub recommendations: &'a [(u64, Vec<(u64, f64)>)],
    /// Per movie, the most similar movies with their similarity, best first.
    pub similar: &'a [(u64, Vec<(u64, f64)>)],
    pub models: &'a [ModelRecord],
}

/// One trained model version: its card holds the parameters, the data
/// snapshot and the metrics (JSON, as the batch wrote it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    pub name: String,
    pub version: String,
    pub created_at: String,
    pub card: serde_json::Value,
}

/// The `app_movie` columns the API reads and the batch writes; the key first.
const MOVIE_COLUMNS: [&str; 8] = [
    "movie_id",
    "title",
    "genres",
    "year",
    "avg_rating",
    "rating_count",
    "std_dev",
    "last_update",
];

fn movie_columns(prefix: &str) -> String {
    MOVIE_COLUMNS
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn movie_row(row: &AnyRow) -> std::result::Result<MovieRow, sqlx::Error> {
    Ok(MovieRow {
        movie_id: row.try_get::<i64, _>("movie_id")? as u64,
        title: row.try_get("title")?,
        genres: movierec_core::parse_genres(&row.try_get::<String, _>("genres")?),
        year: row.try_get::<Option<i64>, _>("year")?.map(|y| y as i32),
        avg_rating: row.try_get("avg_rating")?,
        rating_count: row.try_get::<i64, _>("rating_count")? as u64,
        std_dev: row.try_get("std_dev")?,
        last_update: row.try_get("last_update")?,
    })
}

fn scored_rows(rows: &[AnyRow]) -> Result<Vec<ScoredRow>> {
    rows.iter()
        .map(|row| {
            Ok(ScoredRow {
                score: row.try_get("score")?,
                movie: movie_row(row)?,
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
        .context(|| "cannot decode a scored movie".into())
}

fn top_row(row: &AnyRow) -> std::result::Result<TopRow, sqlx::Error> {
    Ok(TopRow {
        rank: row.try_get::<i64, _>("list_position")? as u64,
        movie_id: row.try_get::<i64, _>("movie_id")? as u64,
        title: row.try_get("title")?,
        genres: movierec_core::parse_genres(&row.try_get::<String, _>("genres")?),
        year: row.try_get::<Option<i64>, _>("year")?.map(|y| y as i32),
        recommendation_score: row.try_get("recommendation_score")?,
        popularity_score: row
            .try_get::<Option<f64>, _>("popularity_score")?
            .unwrap_or(0.0),
        genre_match_score: row
            .try_get::<Option<f64>, _>("genre_match_score")?
            .unwrap_or(0.0),
        avg_rating: row.try_get("avg_rating")?,
        rating_count: row.try_get::<i64, _>("rating_count")? as u64,
    })
}

fn batch_run(row: &AnyRow) -> std::result::Result<BatchRun, sqlx::Error> {
    Ok(BatchRun {
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        engine: row.try_get("engine")?,
        source: row.try_get("source")?,
        status: row.try_get("status")?,
        records_read: row.try_get::<i64, _>("records_read")? as u64,
        ratings: row.try_get::<i64, _>("ratings")? as u64,
        users: row.try_get::<i64, _>("users")? as u64,
        movies: row.try_get::<i64, _>("movies")? as u64,
        ranked: row.try_get::<i64, _>("ranked")? as u64,
        global_mean: row.try_get("global_mean")?,
        duration_ms: row.try_get::<i64, _>("duration_ms")? as u64,
        error: row.try_get("error")?,
        // A run recorded before stages were kept has none; an unreadable
        // record is shown as none rather than hiding the run.
        stages: row
            .try_get::<Option<String>, _>("stages")?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
    })
}

/// A filter as SQL conditions and the values to bind, in order.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

fn like_pattern(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped
}

impl ServingDb {
    /// Connects (creating a SQLite file and its folder if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let mut connect_url = url.to_string();
        if dialect == Dialect::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default();
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Invalid(format!("cannot create folder {}: {e}", parent.display()))
                })?;
            }
            if !url.contains("mode=") {
                connect_url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // Network databases can drop idle connections: check those before
            // use; a SQLite file cannot, and the check is a thread round trip.
            .test_before_acquire(dialect != Dialect::Sqlite)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&connect_url)
            .await
            .context(|| format!("cannot connect to the serving database {}", redact(url)))?;
        let db = Self {
            pool,
            dialect,
            url: url.to_string(),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<()> {
        let [tables, stages, models, accounts, position] = match self.dialect {
            Dialect::Sqlite => [
                include_str!("../migrations/serving-sqlite/0001_serving.sql"),
                include_str!("../migrations/serving-sqlite/0002_batch_stages.sql"),
                include_str!("../migrations/serving-sqlite/0003_models.sql"),
                include_str!("../migrations/serving-sqlite/0004_accounts.sql"),
                include_str!("../migrations/serving-sqlite/0005_top_position.sql"),
            ],
            Dialect::MySql => [
                include_str!("../migrations/serving-mysql/0001_serving.sql"),
                include_str!("../migrations/serving-mysql/0002_batch_stages.sql"),
                include_str!("../migrations/serving-mysql/0003_models.sql"),
                include_str!("../migrations/serving-mysql/0004_accounts.sql"),
                include_str!("../migrations/serving-mysql/0005_top_position.sql"),
            ],
            Dialect::Postgres => [
                include_str!("../migrations/serving-postgres/0001_serving.sql"),
                include_str!("../migrations/serving-postgres/0002_batch_stages.sql"),
                include_str!("../migrations/serving-postgres/0003_models.sql"),
                include_str!("../migrations/serving-postgres/0004_accounts.sql"),
                include_str!("../migrations/serving-postgres/0005_top_position.sql"),
            ],
        };
        let migration = |version, name: &str, sql: &'static str| {
            Migration::new(
                version,
                name.to_owned().into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        };
        let mut migrator = Migrator::with_migrations(vec![
            migration(1, "serving tables", tables),
            migration(2, "batch run stages", stages),
            migration(3, "personalized models", models),
            migration(4, "web accounts", accounts),
            migration(5, "top list position index", position),
        ]);
        migrator.dangerous_set_table_name("_movierec_serving_migrations");
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                what: format!("the serving database {}", redact(&self.url)),
                source,
            })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL with its password hidden.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.dialect.placeholders(sql))
    }

    /// Publishes one batch's results atomically: readers see the previous
    /// results or these, never a mix.
    pub async fn publish(&self, input: PublishInput<'_>) -> Result<()> {
        let features: HashMap<u64, &FeatureAccumulator> = input
            .movie_features
            .iter()
            .map(|(id, acc)| (*id, acc))
            .collect();
        let max_count = input
            .movie_features
            .iter()
            .map(|(_, a)| a.count)
            .max()
            .unwrap_or(0);
        let shares = genre_shares(input.movies.iter().map(|m| {
            (
                m.genres.as_slice(),
                features.get(&m.movie_id).map_or(0, |a| a.count),
            )
        }));
        let genres_by_movie: HashMap<u64, &[String]> = input
            .movies
            .iter()
            .map(|m| (m.movie_id, m.genres.as_slice()))
            .collect();

        write_on_own_connection(&self.pool, || "cannot publish".into(), async |connection| {
            let mut tx = connection
                .begin()
                .await
                .context(|| "cannot begin publishing".into())?;
            // Every column but the key is refreshed on re-publish.
            let updated = &MOVIE_COLUMNS[1..];
            for chunk in input.movies.chunks(ROWS_PER_INSERT) {
                let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO app_movie ({}) VALUES {values}{}",
                    movie_columns(""),
                    self.dialect.upsert("movie_id", updated)
                );
                let sql = self.sql(&sql);
                let mut query = chunk_query(sql, chunk.len(), ROWS_PER_INSERT);
                for movie in chunk {
                    let f = features
                        .get(&movie.movie_id)
                        .map(|a| a.features())
                        .filter(|f| f.rating_count > 0);
                    query = query
                        .bind(i(movie.movie_id))
                        .bind(movie.title.clone())
                        .bind(movie.genres_text())
                        .bind(movie.year.map(i64::from))
                        .bind(f.map_or(0.0, |f| f.avg_rating))
                        .bind(f.map_or(0, |f| i(f.rating_count)))
                        .bind(f.map_or(0.0, |f| f.std_dev))
                        .bind(f.map(|f| f.last_update.to_iso8601()));
                }
                query
                    .execute(&mut *tx)
                    .await
                    .context(|| "cannot publish app_movie".into())?;
            }

            for table in [
                "app_recommendationdata",
                "app_userfeatures",
                "app_ratingdistribution",
            ] {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *tx)
                    .await
                    .context(|| format!("cannot clear {table}"))?;
            }
            for (start, chunk) in input.top.movies.chunks(ROWS_PER_INSERT).enumerate() {
                let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let sql = self.sql(&format!(
                    "INSERT INTO app_recommendationdata (list_position, movie_id_ref, recommendation_score, \
                     popularity_score, genre_match_score) VALUES {values}"
                ));
                let mut query = chunk_query(sql, chunk.len(), ROWS_PER_INSERT);
                for (offset, movie) in chunk.iter().enumerate() {
                    let genres = genres_by_movie.get(&movie.movie_id).copied().unwrap_or(&[]);
                    query = query
                        .bind((start * ROWS_PER_INSERT + offset + 1) as i64)
                        .bind(i(movie.movie_id))
                        .bind(movie.score)
                        .bind(popularity_score(movie.rating_count, max_count))
                        .bind(genre_match_score(genres, &shares));
                }
                query
                    .execute(&mut *tx)
                    .await
                    .context(|| "cannot publish app_recommendationdata".into())?;
            }
            for chunk in input.user_features.chunks(ROWS_PER_INSERT) {
                let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let sql = self.sql(&format!(
                    "INSERT INTO app_userfeatures (user_id, avg_rating, rating_count, std_dev, last_update) VALUES {values}"
                ));
                let mut query = chunk_query(sql, chunk.len(), ROWS_PER_INSERT);
                for (user_id, acc) in chunk {
                    let f = acc.features();
                    query = query
                        .bind(i(*user_id))
                        .bind(f.avg_rating)
                        .bind(i(f.rating_count))
                        .bind(f.std_dev)
                        .bind(f.last_update.to_iso8601());
                }
                query
                    .execute(&mut *tx)
                    .await
                    .context(|| "cannot publish app_userfeatures".into())?;
            }
            for (half, count) in input.histogram.iter().enumerate().skip(1) {
                sqlx::query(
                    self.sql("INSERT INTO app_ratingdistribution (rating, rating_count) VALUES (?, ?)"),
                )
                .bind(half as f64 / 2.0)
                .bind(i(*count))
                .execute(&mut *tx)
                .await
                .context(|| "cannot publish app_ratingdistribution".into())?;
            }
            tx.commit()
                .await
                .context(|| "cannot commit the published batch".into())
        })
        .await
    }

    /// Replaces the personalized recommendations and similar movies with a
    /// run's, and records its model versions, in one transaction.
    pub async fn publish_models(&self, input: ModelsPublish<'_>) -> Result<()> {
        write_on_own_connection(
            &self.pool,
            || "cannot publish the models".into(),
            async |connection| {
                let mut tx = connection
                    .begin()
                    .await
                    .context(|| "cannot begin publishing the models".into())?;
                for (table, key, other, lists) in [
                    (
                        "app_userrecommendation",
                        "user_id",
                        "movie_id",
                        input.recommendations,
                    ),
                    (
                        "app_similarmovie",
                        "movie_id",
                        "similar_movie_id",
                        input.similar,
                    ),
                ] {
                    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *tx)
                        .await
                        .context(|| format!("cannot clear {table}"))?;
                    let rows: Vec<(u64, usize, u64, f64)> = lists
                        .iter()
                        .flat_map(|(id, list)| {
                            list.iter()
                                .enumerate()
                                .map(move |(n, &(item, score))| (*id, n + 1, item, score))
                        })
                        .collect();
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
                        let sql = self.sql(&format!(
                            "INSERT INTO {table} ({key}, position, {other}, score) VALUES {values}"
                        ));
                        let mut query = chunk_query(sql, chunk.len(), ROWS_PER_INSERT);
                        for &(id, position, item, score) in chunk {
                            query = query
                                .bind(i(id))
                                .bind(position as i64)
                                .bind(i(item))
                                .bind(score);
                        }
                        query
                            .execute(&mut *tx)
                            .await
                            .context(|| format!("cannot publish {table}"))?;
                    }
                }
                for card in input.models {
                    sqlx::query(self.sql(
                    "INSERT INTO app_model (name, version, created_at, card) VALUES (?, ?, ?, ?)",
                ))
                .bind(card.name.clone())
                .bind(card.version.clone())
                .bind(card.created_at.clone())
                .bind(card.card.to_string())
                .execute(&mut *tx)
                .await
                .context(|| "cannot record the model version".into())?;
                }
                tx.commit()
                    .await
                    .context(|| "cannot commit the published models".into())
            },
        )
        .await
    }

    /// Model versions, newest first (`name` filters by model).
    pub async fn models(&self, name: Option<&str>, limit: u64) -> Result<Vec<ModelRecord>> {
        let (filter, binds) = match name {
            Some(name) => (" WHERE name = ?", vec![Bind::Text(name.to_string())]),
            None => ("", Vec::new()),
        };
        let sql = format!(
            "SELECT name, version, created_at, card FROM app_model{filter} ORDER BY id DESC LIMIT ?"
        );
        let rows = self.fetch(&sql, &binds, &[i(limit)]).await?;
        rows.iter()
            .map(|row| {
                Ok(ModelRecord {
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    created_at: row.try_get("created_at")?,
                    card: serde_json::from_str(&row.try_get::<String, _>("card")?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .context(|| "cannot decode a model record".into())
    }

    /// Records a finished (or failed) batch run.
    pub async fn record_run(&self, run: &BatchRun) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO app_batchrun (started_at, finished_at, engine, source, status, records_read, \
             ratings, users, movies, ranked, global_mean, duration_ms, error, stages) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(run.started_at.clone())
        .bind(run.finished_at.clone())
        .bind(run.engine.clone())
        .bind(run.source.clone())
        .bind(run.status.clone())
        .bind(i(run.records_read))
        .bind(i(run.ratings))
        .bind(i(run.users))
        .bind(i(run.movies))
        .bind(i(run.ranked))
        .bind(run.global_mean)
        .bind(i(run.duration_ms))
        .bind(run.error.clone())
        .bind(serde_json::to_string(&run.stages).expect("stages serialize"))
        .execute(&self.pool)
        .await
        .context(|| "cannot record the batch run".into())?;
        Ok(())
    }

    fn conditions(&self, filter: &MovieFilter, prefix: &str) -> (String, Vec<Bind>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        if let Some(q) = &filter.q {
            clauses.push(format!("LOWER({prefix}title) LIKE ? ESCAPE '!'"));
            binds.push(Bind::Text(format!("%{}%", like_pattern(q))));
        }
        if let Some(genre) = &filter.genre {
            clauses.push(format!(
                "LOWER({}) LIKE ? ESCAPE '!'",
                self.dialect.piped(&format!("{prefix}genres"))
            ));
            binds.push(Bind::Text(format!("%|{}|%", like_pattern(genre))));
        }
        if let Some(year) = filter.year_from {
            clauses.push(format!("{prefix}year >= ?"));
            binds.push(Bind::Int(year.into()));
        }
        if let Some(year) = filter.year_to {
            clauses.push(format!("{prefix}year <= ?"));
            binds.push(Bind::Int(year.into()));
        }
        if let Some(count) = filter.min_count {
            clauses.push(format!("{prefix}rating_count >= ?"));
            binds.push(Bind::Int(i(count)));
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (sql, binds)
    }

    pub(crate) async fn fetch(
        &self,
        sql: &str,
        binds: &[Bind],
        tail: &[i64],
    ) -> Result<Vec<AnyRow>> {
        let mut query = sqlx::query(self.sql(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(value) => query.bind(*value),
            };
        }
        for value in tail {
            query = query.bind(*value);
        }
        query
            .fetch_all(&self.pool)
            .await
            .context(|| "serving database query failed".into())
    }

    async fn count(&self, sql: &str, binds: &[Bind]) -> Result<u64> {
        let rows = self.fetch(sql, binds, &[]).await?;
        let count: i64 = rows[0]
            .try_get(0)
            .context(|| "cannot decode a count".into())?;
        Ok(count as u64)
    }
}

#[async_trait]
impl ServingStore for ServingDb {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context(|| format!("serving database {}", redact(&self.url)))?;
        Ok(())
    }

    async fn movies(
        &self,
        filter: &MovieFilter,
        sort: MovieSort,
        page: Page,
    ) -> Result<(Vec<MovieRow>, u64)> {
        let (conditions, binds) = self.conditions(filter, "");
        let total = self
            .count(
                &format!("SELECT COUNT(*) FROM app_movie{conditions}"),
                &binds,
            )
            .await?;
        let sql = format!(
            "SELECT {} FROM app_movie{conditions} ORDER BY {} LIMIT ? OFFSET ?",
            movie_columns(""),
            sort.order_by()
        );
        let rows = self
            .fetch(&sql, &binds, &[i(page.page_size), page.offset()])
            .await?;
        let movies = rows
            .iter()
            .map(movie_row)
            .collect::<std::result::Result<_, _>>()
            .context(|| "cannot decode movies".into())?;
        Ok((movies, total))
    }

    async fn movie(&self, movie_id: u64) -> Result<Option<(MovieRow, Option<TopRow>)>> {
        let sql = format!(
            "SELECT {} FROM app_movie WHERE movie_id = ?",
            movie_columns("")
        );
        let rows = self.fetch(&sql, &[Bind::Int(i(movie_id))], &[]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let movie = movie_row(row).context(|| "cannot decode a movie".into())?;
        let sql = format!(
            "SELECT r.list_position, r.recommendation_score, r.popularity_score, r.genre_match_score, {} \
             FROM app_recommendationdata r JOIN app_movie m ON m.movie_id = r.movie_id_ref WHERE r.movie_id_ref = ?",
            movie_columns("m.")
        );
        let rows = self.fetch(&sql, &[Bind::Int(i(movie_id))], &[]).await?;
        let top = rows
            .first()
            .map(top_row)
            .transpose()
            .context(|| "cannot decode a recommendation".into())?;
        Ok(Some((movie, top)))
    }

    async fn user_recommendations(&self, user_id: u64, k: u64) -> Result<Vec<ScoredRow>> {
        let sql = format!(
            "SELECT r.score, {} FROM app_userrecommendation r JOIN app_movie m ON m.movie_id = r.movie_id \
             WHERE r.user_id = ? ORDER BY r.position LIMIT ?",
            movie_columns("m.")
        );
        let rows = self.fetch(&sql, &[Bind::Int(i(user_id))], &[i(k)]).await?;
        scored_rows(&rows)
    }

    async fn similar_movies(&self, movie_id: u64, k: u64) -> Result<Vec<ScoredRow>> {
        let sql = format!(
            "SELECT r.score, {} FROM app_similarmovie r JOIN app_movie m ON m.movie_id = r.similar_movie_id \
             WHERE r.movie_id = ? ORDER BY r.position LIMIT ?",
            movie_columns("m.")
        );
        let rows = self.fetch(&sql, &[Bind::Int(i(movie_id))], &[i(k)]).await?;
        scored_rows(&rows)
    }

    async fn movies_by_id(&self, ids: &[u64]) -> Result<Vec<MovieRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT {} FROM app_movie WHERE movie_id IN ({marks})",
                movie_columns("")
            );
            let binds: Vec<Bind> = chunk.iter().map(|&id| Bind::Int(i(id))).collect();
            for row in self.fetch(&sql, &binds, &[]).await? {
                out.push(movie_row(&row).context(|| "cannot decode a movie".into())?);
            }
        }
        Ok(out)
    }

    async fn all_movies(&self) -> Result<Vec<MovieRow>> {
        let sql = format!("SELECT {} FROM app_movie", movie_columns(""));
        self.fetch(&sql, &[], &[])
            .await?
            .iter()
            .map(movie_row)
            .collect::<std::result::Result<_, _>>()
            .context(|| "cannot decode a movie".into())
    }

    async fn catalogue_version(&self) -> Result<u64> {
        self.count("SELECT COALESCE(MAX(id), 0) FROM app_batchrun", &[])
            .await
    }

    async fn top(&self, filter: &MovieFilter, page: Page) -> Result<(Vec<TopRow>, u64)> {
        let (conditions, binds) = self.conditions(filter, "m.");
        let from = "FROM app_recommendationdata r JOIN app_movie m ON m.movie_id = r.movie_id_ref";
        // Unfiltered, the join changes nothing (a batch publishes every listed
        // movie with the list): count the list alone.
        let total = if conditions.is_empty() {
            self.count("SELECT COUNT(*) FROM app_recommendationdata", &[])
                .await?
        } else {
            self.count(&format!("SELECT COUNT(*) {from}{conditions}"), &binds)
                .await?
        };
        let sql = format!(
            "SELECT r.list_position, r.recommendation_score, r.popularity_score, r.genre_match_score, {} \
             {from}{conditions} ORDER BY r.list_position LIMIT ? OFFSET ?",
            movie_columns("m.")
        );
        let rows = self
            .fetch(&sql, &binds, &[i(page.page_size), page.offset()])
            .await?;
        let top = rows
            .iter()
            .map(top_row)
            .collect::<std::result::Result<_, _>>()
            .context(|| "cannot decode recommendations".into())?;
        Ok((top, total))
    }

    async fn user_features(&self, user_id: u64) -> Result<Option<Features>> {
        let rows = self
            .fetch(
                "SELECT avg_rating, rating_count, std_dev, last_update FROM app_userfeatures WHERE user_id = ?",
                &[Bind::Int(i(user_id))],
                &[],
            )
            .await?;
        rows.first()
            .map(|row| -> std::result::Result<Features, sqlx::Error> {
                let last: Option<String> = row.try_get("last_update")?;
                Ok(Features {
                    avg_rating: row.try_get("avg_rating")?,
                    rating_count: row.try_get::<i64, _>("rating_count")? as u64,
                    std_dev: row.try_get("std_dev")?,
                    last_update: last
                        .and_then(|t| EventTime::parse(&t).ok())
                        .unwrap_or_default(),
                })
            })
            .transpose()
            .context(|| "cannot decode user features".into())
    }

    async fn stats(&self) -> Result<Stats> {
        let movies = self.count("SELECT COUNT(*) FROM app_movie", &[]).await?;
        let rated_movies = self
            .count("SELECT COUNT(*) FROM app_movie WHERE rating_count > 0", &[])
            .await?;
        let users = self
            .count("SELECT COUNT(*) FROM app_userfeatures", &[])
            .await?;
        let recommendations = self
            .count("SELECT COUNT(*) FROM app_recommendationdata", &[])
            .await?;
        let rows = self
            .fetch(
                "SELECT rating, rating_count FROM app_ratingdistribution ORDER BY rating",
                &[],
                &[],
            )
            .await?;
        let rating_distribution: Vec<(f64, u64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("rating")?,
                    r.try_get::<i64, _>("rating_count")? as u64,
                ))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .context(|| "cannot decode the rating distribution".into())?;
        let ratings: u64 = rating_distribution.iter().map(|(_, c)| c).sum();
        let average_rating = (ratings > 0).then(|| {
            rating_distribution
                .iter()
                .map(|(r, c)| r * *c as f64)
                .sum::<f64>()
                / ratings as f64
        });
        let rows = self
            .fetch(
                "SELECT genres FROM app_movie WHERE rating_count > 0",
                &[],
                &[],
            )
            .await?;
        let mut genres: HashMap<String, u64> = HashMap::new();
        for row in &rows {
            let text: String = row
                .try_get("genres")
                .context(|| "cannot decode genres".into())?;
            for genre in movierec_core::parse_genres(&text) {
                *genres.entry(genre).or_default() += 1;
            }
        }
        let mut top_genres: Vec<(String, u64)> = genres.into_iter().collect();
        top_genres.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let last_batch = self.batch_runs(1).await?.into_iter().next();
        Ok(Stats {
            movies,
            rated_movies,
            users,
            ratings,
            average_rating,
            rating_distribution,
            top_genres,
            recommendations,
            last_batch,
        })
    }

    async fn batch_runs(&self, limit: u64) -> Result<Vec<BatchRun>> {
        let rows = self
            .fetch(
                "SELECT * FROM app_batchrun ORDER BY id DESC LIMIT ?",
                &[],
                &[i(limit)],
            )
            .await?;
        rows.iter()
            .map(batch_run)
            .collect::<std::result::Result<_, _>>()
            .context(|| "cannot decode batch runs".into())
    }
}
