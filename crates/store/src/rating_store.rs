use crate::{Context, RatingStore, Result, StoreError, StoredRating, db_int as to_i64};
use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};
use movierec_core::{EventTime, FeatureAccumulator, Movie, Rating};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};
use std::path::{Path, PathBuf};

/// Rows per multi-row INSERT: well under SQLite's 32766 bound parameters.
const ROWS_PER_INSERT: usize = 1000;

/// The embedded rating store: one SQLite file (`sqlite.path`).
#[derive(Debug, Clone)]
pub struct SqliteRatingStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteRatingStore {
    /// Opens (creating the file and its folder if needed) and migrates.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Invalid(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .context(|| format!("cannot open the SQLite store {}", path.display()))?;
        let mut migrator = Migrator::with_migrations(vec![Migration::new(
            1,
            "store".into(),
            MigrationType::Simple,
            include_str!("../migrations/store-sqlite/0001_store.sql").into_sql_str(),
            false,
        )]);
        // The serving tables may share this file; each set keeps its own history.
        migrator.dangerous_set_table_name("_movierec_store_migrations");
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                what: format!("the SQLite store {}", path.display()),
                source,
            })?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context(|| format!("SQLite store {}", self.path.display()))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn accumulator(
    row: &sqlx::sqlite::SqliteRow,
) -> std::result::Result<FeatureAccumulator, sqlx::Error> {
    Ok(FeatureAccumulator {
        count: row.try_get::<i64, _>("rating_count")? as u64,
        sum_half: row.try_get::<i64, _>("sum_half")? as u64,
        sum_sq_quarter: row.try_get::<i64, _>("sum_sq_quarter")? as u64,
        last_update_ms: row.try_get("last_update_ms")?,
    })
}

#[async_trait]
impl RatingStore for SqliteRatingStore {
    async fn upsert_ratings(&self, ratings: &[StoredRating]) -> Result<()> {
        let mut tx = self.pool.begin().await.context(|| "begin".into())?;
        for chunk in ratings.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO ratings (user_id, movie_id, rating_half, ts_ms) VALUES {values} \
                 ON CONFLICT (user_id, movie_id) DO UPDATE SET rating_half = excluded.rating_half, \
                 ts_ms = excluded.ts_ms WHERE excluded.ts_ms >= ratings.ts_ms"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(to_i64(r.user_id))
                    .bind(to_i64(r.movie_id))
                    .bind(r.rating.half_stars() as i64)
                    .bind(r.timestamp.millis());
            }
            query
                .execute(&mut *tx)
                .await
                .context(|| "cannot store ratings".into())?;
        }
        tx.commit().await.context(|| "cannot commit ratings".into())
    }

    async fn upsert_movies(&self, movies: &[Movie]) -> Result<()> {
        let mut tx = self.pool.begin().await.context(|| "begin".into())?;
        for chunk in movies.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO movies (movie_id, title, genres, year) VALUES {values} \
                 ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, \
                 genres = excluded.genres, year = excluded.year"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for m in chunk {
                query = query
                    .bind(to_i64(m.movie_id))
                    .bind(&m.title)
                    .bind(m.genres_text())
                    .bind(m.year.map(i64::from));
            }
            query
                .execute(&mut *tx)
                .await
                .context(|| "cannot store movies".into())?;
        }
        tx.commit().await.context(|| "cannot commit movies".into())
    }

    async fn rebuild_features(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.context(|| "begin".into())?;
        for (table, key) in [("user_features", "user_id"), ("movie_features", "movie_id")] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await
                .context(|| format!("cannot clear {table}"))?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} ({key}, rating_count, sum_half, sum_sq_quarter, last_update_ms) \
                 SELECT {key}, COUNT(*), SUM(rating_half), SUM(rating_half * rating_half), MAX(ts_ms) \
                 FROM ratings GROUP BY {key}"
            )))
            .execute(&mut *tx)
            .await
            .context(|| format!("cannot rebuild {table}"))?;
        }
        tx.commit()
            .await
            .context(|| "cannot commit features".into())
    }

    async fn rating_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ratings")
            .fetch_one(&self.pool)
            .await
            .context(|| "cannot count ratings".into())?;
        Ok(count as u64)
    }

    async fn movies(&self) -> Result<Vec<Movie>> {
        let rows =
            sqlx::query("SELECT movie_id, title, genres, year FROM movies ORDER BY movie_id")
                .fetch_all(&self.pool)
                .await
                .context(|| "cannot read movies".into())?;
        rows.iter()
            .map(|row| {
                Ok(Movie {
                    movie_id: row.try_get::<i64, _>("movie_id")? as u64,
                    title: row.try_get("title")?,
                    genres: movierec_core::parse_genres(&row.try_get::<String, _>("genres")?),
                    year: row.try_get::<Option<i64>, _>("year")?.map(|y| y as i32),
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .context(|| "cannot decode movies".into())
    }

    fn ratings_by_user(&self) -> BoxStream<'_, Result<StoredRating>> {
        sqlx::query(
            "SELECT user_id, movie_id, rating_half, ts_ms FROM ratings ORDER BY user_id, movie_id",
        )
        .fetch(&self.pool)
        .map(|row| {
            let row = row.context(|| "cannot read ratings".into())?;
            let decode = || -> std::result::Result<StoredRating, sqlx::Error> {
                let half: i64 = row.try_get("rating_half")?;
                Ok(StoredRating {
                    user_id: row.try_get::<i64, _>("user_id")? as u64,
                    movie_id: row.try_get::<i64, _>("movie_id")? as u64,
                    rating: Rating::from_half_stars(half as u8)
                        .map_err(|e| sqlx::Error::Decode(e.into()))?,
                    timestamp: EventTime(row.try_get("ts_ms")?),
                })
            };
            decode().context(|| "cannot decode a rating".into())
        })
        .boxed()
    }

    async fn user_features(&self, user_id: u64) -> Result<Option<FeatureAccumulator>> {
        let row = sqlx::query("SELECT * FROM user_features WHERE user_id = ?")
            .bind(to_i64(user_id))
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("cannot read features of user {user_id}"))?;
        row.map(|r| accumulator(&r))
            .transpose()
            .context(|| "cannot decode features".into())
    }

    async fn movie_features(&self, movie_id: u64) -> Result<Option<FeatureAccumulator>> {
        let row = sqlx::query("SELECT * FROM movie_features WHERE movie_id = ?")
            .bind(to_i64(movie_id))
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("cannot read features of movie {movie_id}"))?;
        row.map(|r| accumulator(&r))
            .transpose()
            .context(|| "cannot decode features".into())
    }
}
