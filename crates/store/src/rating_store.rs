use crate::{
    ApplyOutcome, Context, RatingStore, Result, SourcedEvent, StoreError, StoredRating,
    StreamBatch, chunk_query, db_int as to_i64, write_on_own_connection,
};
use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};
use movierec_core::{
    CurrentRating, EventTime, FeatureAccumulator, FeatureDelta, Movie, Rating, RatingEvent,
    plan_batch,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Rows per multi-row INSERT: well under SQLite's 32766 bound parameters.
const ROWS_PER_INSERT: usize = 1000;
/// Pairs per lookup of current ratings.
const PAIRS_PER_LOOKUP: usize = 5000;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

/// What a write applies: events from the API, or a stretch of a stream.
enum Source<'a> {
    Direct(&'a [RatingEvent]),
    Stream(StreamBatch<'a>),
}

/// WAL pages (4 KiB) written before a write checkpoints: 64 MiB.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// The writer's SQLite page cache, in MiB, unless `sqlite.cache_mib` says.
pub const DEFAULT_CACHE_MIB: u32 = 64;
/// Each reader's page cache, in MiB (at most `sqlite.cache_mib`). Readers
/// look up a user's ratings or scan a table: the B-tree's upper levels fit
/// (~2 MiB for 12 M ratings) and the kernel's page cache holds the rest. At
/// the writer's 64 MiB, each of them filled up with leaf pages as the store
/// grew: most of the rise in a long soak's memory.
pub const READ_CACHE_MIB: u32 = 8;
/// Reading connections the store keeps open at most.
pub const MAX_CONNECTIONS: u32 = 4;

/// The embedded rating store: one SQLite file (`sqlite.path`).
#[derive(Debug, Clone)]
pub struct SqliteRatingStore {
    /// Reads, and the small writes (the change log's upkeep).
    pool: SqlitePool,
    /// One connection for the batch writes (the consumer's, imports, the
    /// feature rebuild), with the large page cache: a batch looks up and
    /// updates random keys all over the ratings B-tree, and its pages stay
    /// cached for the next batch. SQLite lets one writer at a time in anyway.
    writer: SqlitePool,
    path: PathBuf,
}

impl SqliteRatingStore {
    /// Opens (creating the file and its folder if needed) and migrates, with
    /// the default page cache ([`DEFAULT_CACHE_MIB`] for the writer).
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_MIB).await
    }

    /// [`open`](Self::open) with `cache_mib` MiB of SQLite page cache for
    /// the writer (`sqlite.cache_mib`) and up to [`READ_CACHE_MIB`] for each
    /// of the [`MAX_CONNECTIONS`] readers: once the store is larger than
    /// that, the caches hold `cache_mib + 4 × 8` MiB, most of a long-running
    /// server's memory.
    pub async fn open_with_cache(path: &Path, cache_mib: u32) -> Result<Self> {
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
            .busy_timeout(std::time::Duration::from_secs(10))
            // Checkpoint after 64 MiB of WAL rather than SQLite's 4 MiB: the
            // committing write runs the checkpoint, copying every page the
            // WAL holds into the database file and syncing it, so at 4 MiB a
            // 2,000-event consumer batch (~2,000 random pages) paid for one
            // each time, and the hot pages (feature rows, the B-tree's upper
            // levels) were copied again each time. The WAL file may grow to
            // about this size plus a batch.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
        // A negative cache_size is in KiB (SQLite's default: 2 MiB).
        let with_cache = |mib: u32| {
            options
                .clone()
                .pragma("cache_size", format!("-{}", u64::from(mib.max(1)) * 1024))
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // A local file does not drop connections; the default ping before
            // each use is a round trip through the connection's thread.
            .test_before_acquire(false)
            .connect_with(with_cache(cache_mib.min(READ_CACHE_MIB)))
            .await
            .context(|| format!("cannot open the SQLite store {}", path.display()))?;
        let mut migrator = Migrator::with_migrations(vec![
            Migration::new(
                1,
                "store".into(),
                MigrationType::Simple,
                include_str!("../migrations/store-sqlite/0001_store.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                2,
                "change log".into(),
                MigrationType::Simple,
                include_str!("../migrations/store-sqlite/0002_change_log.sql").into_sql_str(),
                false,
            ),
        ]);
        // The serving tables may share this file; each set keeps its own history.
        migrator.dangerous_set_table_name("_movierec_store_migrations");
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                what: format!("the SQLite store {}", path.display()),
                source,
            })?;
        // After the migrations: the writer's first connection finds the file.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // A write may queue behind a consumer batch (100,000 events on a
            // large store: seconds); sqlx's default gives up after 30 s.
            .acquire_timeout(std::time::Duration::from_secs(120))
            .connect_with(with_cache(cache_mib))
            .await
            .context(|| format!("cannot open the SQLite store {}", path.display()))?;
        Ok(Self {
            pool,
            writer,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// (rating, count) of one movie's current ratings, for 0.5 … 5.0.
    pub async fn movie_rating_counts(&self, movie_id: u64) -> Result<Vec<(f64, u64)>> {
        let rows = sqlx::query(
            "SELECT rating_half, COUNT(*) AS n FROM ratings WHERE movie_id = ? GROUP BY rating_half",
        )
        .bind(to_i64(movie_id))
        .fetch_all(&self.pool)
        .await
        .context(|| format!("cannot count the ratings of movie {movie_id}"))?;
        let mut counts: Vec<(f64, u64)> = (1..=10).map(|h| (f64::from(h) / 2.0, 0)).collect();
        for row in &rows {
            let half: i64 = row
                .try_get("rating_half")
                .context(|| "cannot decode a rating".into())?;
            let n: i64 = row
                .try_get("n")
                .context(|| "cannot decode a count".into())?;
            if let Some(slot) = counts.get_mut((half - 1) as usize) {
                slot.1 = n as u64;
            }
        }
        Ok(counts)
    }

    /// Current ratings by the month of their timestamp ("YYYY-MM", UTC),
    /// oldest first: the stats page's ratings-over-time chart.
    pub async fn ratings_per_month(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT strftime('%Y-%m', ts_ms / 1000, 'unixepoch') AS month, COUNT(*) AS n \
             FROM ratings GROUP BY month ORDER BY month",
        )
        .fetch_all(&self.pool)
        .await
        .context(|| "cannot count ratings by month".into())?;
        rows.iter()
            .map(|r| Ok((r.try_get("month")?, r.try_get::<i64, _>("n")? as u64)))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .context(|| "cannot decode a monthly count".into())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context(|| format!("SQLite store {}", self.path.display()))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// One write transaction for a batch: skip replayed positions, plan against
    /// the stored ratings, write ratings and feature deltas, record progress.
    async fn apply(&self, source: Source<'_>) -> Result<ApplyOutcome> {
        write_on_own_connection(
            &self.writer,
            || format!("cannot start a write on {}", self.path.display()),
            async move |connection| self.apply_on(connection, source).await,
        )
        .await
    }

    async fn apply_on(
        &self,
        connection: &mut sqlx::SqliteConnection,
        source: Source<'_>,
    ) -> Result<ApplyOutcome> {
        // IMMEDIATE: take the write lock up front, so two writers (two
        // consumers, or the API beside a consumer) queue instead of failing
        // to upgrade a read lock.
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context(|| format!("cannot start a write on {}", self.path.display()))?;
        let outcome = match source {
            Source::Direct(events) => {
                let events: Vec<&RatingEvent> = events.iter().collect();
                self.apply_in(&mut tx, &events, None, 0).await?
            }
            Source::Stream(batch) => {
                // Read inside the write transaction: no other writer can
                // record these positions between the check and the write.
                let applied: HashMap<i32, i64> = stored_offsets(&mut tx, batch.topic)
                    .await?
                    .into_iter()
                    .collect();
                let fresh: Vec<&RatingEvent> = batch
                    .events
                    .iter()
                    .filter(|e| {
                        applied
                            .get(&e.partition)
                            .is_none_or(|&next| e.offset >= next)
                    })
                    .map(|e: &SourcedEvent| &e.event)
                    .collect();
                let replayed = batch.events.len() - fresh.len();
                let progress = Some((batch.topic, batch.next_offsets));
                self.apply_in(&mut tx, &fresh, progress, replayed).await?
            }
        };
        tx.commit()
            .await
            .context(|| format!("cannot commit a batch to {}", self.path.display()))?;
        Ok(outcome)
    }

    async fn apply_in(
        &self,
        tx: &mut Tx<'_>,
        events: &[&RatingEvent],
        progress: Option<(&str, &[(i32, i64)])>,
        replayed: usize,
    ) -> Result<ApplyOutcome> {
        let current = current_ratings(tx, events).await?;
        let plan = plan_batch(events.iter().copied(), &current);
        for chunk in plan.ratings.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO ratings (user_id, movie_id, rating_half, ts_ms) VALUES {values} \
                 ON CONFLICT (user_id, movie_id) DO UPDATE SET rating_half = excluded.rating_half, \
                 ts_ms = excluded.ts_ms"
            );
            let mut query = chunk_query(AssertSqlSafe(sql), chunk.len(), ROWS_PER_INSERT);
            for (user_id, movie_id, r) in chunk {
                query = query
                    .bind(to_i64(*user_id))
                    .bind(to_i64(*movie_id))
                    .bind(r.rating.half_stars() as i64)
                    .bind(r.timestamp.millis());
            }
            query
                .execute(&mut **tx)
                .await
                .context(|| "cannot store ratings".into())?;
        }
        for (table, key, deltas) in [
            ("user_features", "user_id", &plan.user_deltas),
            ("movie_features", "movie_id", &plan.movie_deltas),
        ] {
            write_deltas(tx, table, key, deltas).await?;
        }
        if let Some((topic, next_offsets)) = progress {
            for chunk in next_offsets.chunks(ROWS_PER_INSERT) {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO consumer_offsets (topic, partition_id, next_offset) VALUES {values} \
                     ON CONFLICT (topic, partition_id) DO UPDATE SET \
                     next_offset = max(next_offset, excluded.next_offset)"
                );
                let mut query = chunk_query(AssertSqlSafe(sql), chunk.len(), ROWS_PER_INSERT);
                for (partition, next) in chunk {
                    query = query.bind(topic).bind(*partition as i64).bind(*next);
                }
                query
                    .execute(&mut **tx)
                    .await
                    .context(|| format!("cannot record the progress of topic {topic}"))?;
            }
        }
        Ok(ApplyOutcome {
            accepted: plan.accepted,
            superseded: plan.superseded,
            replayed,
            ratings_written: plan.ratings.len(),
        })
    }
}

/// The stored ratings of the pairs a batch touches.
async fn current_ratings(
    tx: &mut Tx<'_>,
    events: &[&RatingEvent],
) -> Result<HashMap<(u64, u64), CurrentRating>> {
    // Sorted: lookups walk the (user_id, movie_id) B-tree in key order.
    let mut pairs: Vec<(u64, u64)> = events.iter().map(|e| (e.user_id, e.movie_id)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut current = HashMap::with_capacity(pairs.len());
    for chunk in pairs.chunks(PAIRS_PER_LOOKUP) {
        let values = vec!["(?, ?)"; chunk.len()].join(", ");
        // A join, not `(user_id, movie_id) IN (VALUES ...)`: SQLite plans
        // the IN form as a full scan of ratings, the join as PK lookups.
        let sql = format!(
            "WITH wanted (user_id, movie_id) AS (VALUES {values}) \
             SELECT r.user_id, r.movie_id, r.rating_half, r.ts_ms \
             FROM wanted CROSS JOIN ratings r \
             ON r.user_id = wanted.user_id AND r.movie_id = wanted.movie_id"
        );
        let mut query = chunk_query(AssertSqlSafe(sql), chunk.len(), PAIRS_PER_LOOKUP);
        for (user_id, movie_id) in chunk {
            query = query.bind(to_i64(*user_id)).bind(to_i64(*movie_id));
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .context(|| "cannot read the stored ratings of a batch".into())?;
        for row in rows {
            let decode = || -> std::result::Result<_, sqlx::Error> {
                let half: i64 = row.try_get("rating_half")?;
                Ok((
                    (
                        row.try_get::<i64, _>("user_id")? as u64,
                        row.try_get::<i64, _>("movie_id")? as u64,
                    ),
                    CurrentRating {
                        rating: Rating::from_half_stars(half as u8)
                            .map_err(|e| sqlx::Error::Decode(e.into()))?,
                        timestamp: EventTime(row.try_get("ts_ms")?),
                    },
                ))
            };
            let (key, rating) = decode().context(|| "cannot decode a stored rating".into())?;
            current.insert(key, rating);
        }
    }
    Ok(current)
}

/// Adds signed deltas to feature rows, creating the rows of new keys.
async fn write_deltas(
    tx: &mut Tx<'_>,
    table: &str,
    key: &str,
    deltas: &[(u64, FeatureDelta)],
) -> Result<()> {
    for chunk in deltas.chunks(ROWS_PER_INSERT) {
        let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO {table} ({key}, rating_count, sum_half, sum_sq_quarter, last_update_ms) \
             VALUES {values} ON CONFLICT ({key}) DO UPDATE SET \
             rating_count = rating_count + excluded.rating_count, \
             sum_half = sum_half + excluded.sum_half, \
             sum_sq_quarter = sum_sq_quarter + excluded.sum_sq_quarter, \
             last_update_ms = max(last_update_ms, excluded.last_update_ms)"
        );
        let mut query = chunk_query(AssertSqlSafe(sql), chunk.len(), ROWS_PER_INSERT);
        for (id, d) in chunk {
            query = query
                .bind(to_i64(*id))
                .bind(d.count)
                .bind(d.sum_half)
                .bind(d.sum_sq_quarter)
                .bind(d.last_update_ms);
        }
        query
            .execute(&mut **tx)
            .await
            .context(|| format!("cannot update {table}"))?;
    }
    Ok(())
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
        write_on_own_connection(&self.writer, || "cannot store ratings".into(), async |connection| {
            let mut tx = connection.begin().await.context(|| "begin".into())?;
            for chunk in ratings.chunks(ROWS_PER_INSERT) {
                let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO ratings (user_id, movie_id, rating_half, ts_ms) VALUES {values} \
                     ON CONFLICT (user_id, movie_id) DO UPDATE SET rating_half = excluded.rating_half, \
                     ts_ms = excluded.ts_ms WHERE excluded.ts_ms >= ratings.ts_ms"
                );
                let mut query =
                    chunk_query(AssertSqlSafe(sql), chunk.len(), ROWS_PER_INSERT);
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
        })
        .await
    }

    async fn upsert_movies(&self, movies: &[Movie]) -> Result<()> {
        write_on_own_connection(
            &self.writer,
            || "cannot store movies".into(),
            async |connection| {
                let mut tx = connection.begin().await.context(|| "begin".into())?;
                for chunk in movies.chunks(ROWS_PER_INSERT) {
                    let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
                    let sql = format!(
                        "INSERT INTO movies (movie_id, title, genres, year) VALUES {values} \
                     ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, \
                     genres = excluded.genres, year = excluded.year"
                    );
                    let mut query = chunk_query(AssertSqlSafe(sql), chunk.len(), ROWS_PER_INSERT);
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
            },
        )
        .await
    }

    async fn apply_events(&self, events: &[RatingEvent]) -> Result<ApplyOutcome> {
        self.apply(Source::Direct(events)).await
    }

    async fn apply_stream_batch(&self, batch: StreamBatch<'_>) -> Result<ApplyOutcome> {
        self.apply(Source::Stream(batch)).await
    }

    async fn stream_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context(|| format!("cannot open {}", self.path.display()))?;
        stored_offsets(&mut conn, topic).await
    }

    async fn rebuild_features(&self) -> Result<()> {
        write_on_own_connection(&self.writer, || "cannot rebuild features".into(), async |connection| {
            let mut tx = connection.begin().await.context(|| "begin".into())?;
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
        })
        .await
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
        // One row per user, not per rating: sqlx's SQLite worker hands every
        // row to the async side on its own, and on two cores each hand-off
        // is a cross-core wake-up and a malloc freed on another thread; the
        // batch spent three times the CPU of a one-core run doing that.
        sqlx::query(
            "SELECT user_id, group_concat(movie_id * 16 + rating_half, ',' ORDER BY movie_id) AS packed, \
                    group_concat(ts_ms, ',' ORDER BY movie_id) AS times \
             FROM ratings GROUP BY user_id ORDER BY user_id",
        )
        .fetch(&self.pool)
        .map(|row| -> Result<Vec<Result<StoredRating>>> {
            let row = row.context(|| "cannot read ratings".into())?;
            let user_id = row
                .try_get::<i64, _>("user_id")
                .context(|| "cannot decode a user id".into())? as u64;
            let (packed, times): (String, String) = (|| Ok((row.try_get("packed")?, row.try_get("times")?)))()
                .context(|| format!("cannot decode the ratings of user {user_id}"))?;
            Ok(packed
                .split(',')
                .zip(times.split(','))
                .map(|(packed, time)| {
                    let (movie_id, half) = unpack_rating(user_id, packed)?;
                    let invalid = |what: String| StoreError::Invalid(format!("user {user_id}: {what}"));
                    Ok(StoredRating {
                        user_id,
                        movie_id,
                        rating: Rating::from_half_stars(half)
                            .map_err(|e| invalid(format!("movie {movie_id}: {e}")))?,
                        timestamp: EventTime(time.parse().map_err(|_| {
                            invalid(format!("cannot decode the rating time '{time}'"))
                        })?),
                    })
                })
                .collect())
        })
        .flat_map(|user| {
            futures_util::stream::iter(match user {
                Ok(ratings) => ratings,
                Err(error) => vec![Err(error)],
            })
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

    async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>> {
        // One row, not one per rating: sqlx's SQLite worker hands each row to
        // the async side on its own (a thread wake-up per row, the channel
        // full every 50), which made this read most of a request's cost.
        // rating_half is 1..=10, so movie_id * 16 + rating_half packs both.
        let packed: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(movie_id * 16 + rating_half) FROM ratings WHERE user_id = ?",
        )
        .bind(to_i64(user_id))
        .fetch_one(&self.pool)
        .await
        .context(|| format!("cannot read the ratings of user {user_id}"))?;
        let Some(packed) = packed else {
            return Ok(Vec::new());
        };
        packed
            .split(',')
            .map(|value| {
                let (movie_id, half) = unpack_rating(user_id, value)?;
                Ok((movie_id, f64::from(half) / 2.0))
            })
            .collect()
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

/// A rating packed by SQL as `movie_id * 16 + rating_half` (rating_half is
/// 1..=10): the reads that fetch many ratings as one text row use it.
fn unpack_rating(user_id: u64, packed: &str) -> Result<(u64, u8)> {
    let value: u64 = packed.parse().map_err(|_| {
        StoreError::Invalid(format!(
            "user {user_id}: cannot decode the packed rating '{packed}'"
        ))
    })?;
    Ok((value / 16, (value % 16) as u8))
}

async fn stored_offsets(conn: &mut sqlx::SqliteConnection, topic: &str) -> Result<Vec<(i32, i64)>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT partition_id, next_offset FROM consumer_offsets WHERE topic = ? ORDER BY partition_id",
    )
    .bind(topic)
    .fetch_all(conn)
    .await
    .context(|| format!("cannot read the recorded progress of topic {topic}"))?;
    Ok(rows.into_iter().map(|(p, o)| (p as i32, o)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(connection: &mut sqlx::SqliteConnection, name: &str) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(connection)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_writer_gets_the_page_cache_asked_for_and_readers_a_small_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteRatingStore::open_with_cache(&dir.path().join("store.db"), 48)
            .await
            .unwrap();
        // Hold several connections at once, so that more than one is opened.
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut connection = store.pool().acquire().await.unwrap();
            assert_eq!(
                pragma(&mut connection, "cache_size").await,
                -i64::from(READ_CACHE_MIB) * 1024
            );
            assert_eq!(
                pragma(&mut connection, "wal_autocheckpoint").await,
                WAL_AUTOCHECKPOINT_PAGES
            );
            held.push(connection);
        }
        let mut writer = store.writer.acquire().await.unwrap();
        assert_eq!(pragma(&mut writer, "cache_size").await, -48 * 1024);
        assert_eq!(
            pragma(&mut writer, "wal_autocheckpoint").await,
            WAL_AUTOCHECKPOINT_PAGES
        );
        drop(writer);

        // A cache smaller than a reader's is everyone's.
        let small = SqliteRatingStore::open_with_cache(&dir.path().join("small.db"), 2)
            .await
            .unwrap();
        let mut reader = small.pool().acquire().await.unwrap();
        assert_eq!(pragma(&mut reader, "cache_size").await, -2 * 1024);
    }
}
