//! Storage adapters behind small traits.
//!
//! - [`RatingStore`]: where accepted ratings and the movie catalogue live
//!   (SQLite in the embedded mode: [`SqliteRatingStore`]).
//! - [`ServingStore`]: the serving database the API reads and the batch
//!   publishes to; one implementation ([`ServingDb`]) speaks SQLite, MySQL
//!   (RDS) and PostgreSQL through sqlx's `Any` driver, with one migration set
//!   per dialect.

mod accounts;
mod change_log;
mod dialect;
mod rating_store;
mod serving;

pub use accounts::{Account, AccountStore, FIRST_ACCOUNT_USER_ID, NewAccount, Session};
pub use change_log::{LOGGED_TABLES, LoggedChange, LoggedRow};
pub use dialect::{Dialect, redact};
pub use rating_store::SqliteRatingStore;
pub use serving::{
    BatchRun, BatchStage, ModelRecord, ModelsPublish, MovieFilter, MovieRow, MovieSort, Page,
    PublishInput, ScoredRow, ServingDb, Stats, TopRow,
};

/// Bytes SQLite has allocated in this process now: every connection's page
/// cache, statements and schemas together. The caches are bounded
/// (`sqlite.cache_mib` for the writer, 8 MiB per reader) and fill as the
/// store grows, so `/metrics` reports this as `movierec_sqlite_memory_bytes`
/// to tell them from a leak.
pub fn sqlite_memory_used() -> u64 {
    // SAFETY: reads SQLite's global allocation counter; it takes no
    // arguments and SQLite (built thread-safe) guards it with its own mutex.
    let bytes = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    u64::try_from(bytes).unwrap_or(0)
}

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use movierec_core::{EventTime, FeatureAccumulator, Movie, Rating, RatingEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {source}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate {what}: {source}")]
    Migrate {
        what: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("{0}")]
    Invalid(String),
    /// A unique name or id is already taken.
    #[error("{0}")]
    Conflict(String),
    /// A sink other than SQL (S3, DynamoDB) failed; the message names what.
    #[error("{0}")]
    Sink(String),
}

/// Ids and counts as SQL BIGINT: every id we accept fits (validation caps
/// them at i64::MAX); saturate rather than wrap if one ever does not.
pub(crate) fn db_int(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Database {
            what: what(),
            source,
        })
    }
}

/// Runs a write on a connection of its own and discards that connection if
/// the write fails. SQLite rolls a transaction back by itself when a COMMIT
/// fails on a full disk; sqlx's own ROLLBACK then fails, and the connection
/// believes it is still inside a transaction and refuses every later BEGIN
/// ("attempted to call begin_with at non-zero transaction depth"). Returned
/// to the pool, it would fail the next writes of a long-running process (the
/// consumer, a server's scheduled batch) long after the disk has room again.
pub(crate) async fn write_on_own_connection<DB: sqlx::Database, T>(
    pool: &sqlx::Pool<DB>,
    what: impl Fn() -> String,
    write: impl AsyncFnOnce(&mut DB::Connection) -> Result<T>,
) -> Result<T> {
    let mut connection = pool.acquire().await.context(&what)?;
    let outcome = write(&mut connection).await;
    if outcome.is_err() {
        connection.close_on_drop();
    }
    outcome
}

/// The query for one chunk of a multi-row statement written in chunks of
/// `full_chunk` rows. Only full chunks' statements are kept prepared (sqlx
/// keeps 100 per connection): the last, shorter chunk of each write has a new
/// length almost every time, and kept statements are large (~370 KB for a
/// 1,000-row upsert, ~1.1 MB for a 5,000-pair lookup), so keeping those grew
/// the consumer by ~200 MiB over minutes.
pub(crate) fn chunk_query<'q, DB: sqlx::Database + sqlx::database::HasStatementCache>(
    sql: impl sqlx::SqlSafeStr,
    rows: usize,
    full_chunk: usize,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments> {
    sqlx::query(sql).persistent(rows == full_chunk)
}

/// One stored rating: the latest of a user for a movie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredRating {
    pub user_id: u64,
    pub movie_id: u64,
    pub rating: Rating,
    pub timestamp: EventTime,
}

/// A validated event and where it sits in its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedEvent {
    pub partition: i32,
    pub offset: i64,
    pub event: RatingEvent,
}

/// A consumed stretch of a stream: the events of `topic` that were valid, and
/// for each partition the offset after the last message consumed (valid or
/// dead-lettered). Stored in the same transaction as the data it produced, so
/// a replay after a crash is recognised and skipped.
#[derive(Debug, Clone, Copy)]
pub struct StreamBatch<'a> {
    pub topic: &'a str,
    pub events: &'a [SourcedEvent],
    pub next_offsets: &'a [(i32, i64)],
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Events that became the current rating of their user and movie.
    pub accepted: usize,
    /// Valid events older than the stored rating: nothing to change.
    pub superseded: usize,
    /// Events at positions already applied (a replay after a crash or rebalance).
    pub replayed: usize,
    /// Rating rows written.
    pub ratings_written: usize,
}

/// Where the consumer writes what it reads from the stream.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Writes a consumed stretch of a stream. Must be idempotent: after a
    /// crash the same stretch (from the same start offsets) comes again.
    async fn apply_stream_batch(&self, batch: StreamBatch<'_>) -> Result<ApplyOutcome>;
    /// The progress the sink knows of, `(partition, next offset)`, for lag.
    async fn stream_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>>;
    /// `true`: the sink stores the positions with the data and skips replays
    /// itself, so the Kafka commit is only a hint. `false`: the Kafka commit
    /// is the progress, and must succeed before the next batch is written.
    fn stores_progress(&self) -> bool;
}

#[async_trait]
impl EventSink for SqliteRatingStore {
    async fn apply_stream_batch(&self, batch: StreamBatch<'_>) -> Result<ApplyOutcome> {
        RatingStore::apply_stream_batch(self, batch).await
    }

    async fn stream_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>> {
        RatingStore::stream_offsets(self, topic).await
    }

    fn stores_progress(&self) -> bool {
        true
    }
}

/// Where accepted ratings and the catalogue are kept.
#[async_trait]
pub trait RatingStore: Send + Sync {
    /// Inserts or replaces ratings; an older rating never overrides a newer one
    /// (equal times: the later call wins).
    async fn upsert_ratings(&self, ratings: &[StoredRating]) -> Result<()>;
    async fn upsert_movies(&self, movies: &[Movie]) -> Result<()>;
    /// Applies events in order (the latest event time wins per user and movie;
    /// a re-rating replaces the old rating in the features), in one transaction.
    async fn apply_events(&self, events: &[RatingEvent]) -> Result<ApplyOutcome>;
    /// Applies a consumed stretch of a stream and records its progress in the
    /// same transaction; positions already recorded are skipped.
    async fn apply_stream_batch(&self, batch: StreamBatch<'_>) -> Result<ApplyOutcome>;
    /// The recorded progress of a topic: `(partition, next offset)`.
    async fn stream_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>>;
    /// Recomputes the real-time feature tables from the ratings.
    async fn rebuild_features(&self) -> Result<()>;
    async fn rating_count(&self) -> Result<u64>;
    async fn movies(&self) -> Result<Vec<Movie>>;
    /// All ratings ordered by user then movie (grouped by user).
    fn ratings_by_user(&self) -> BoxStream<'_, Result<StoredRating>>;
    async fn user_features(&self, user_id: u64) -> Result<Option<FeatureAccumulator>>;
    /// The user's current ratings, (movie, rating): what fold-in starts from.
    async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>>;
    async fn movie_features(&self, movie_id: u64) -> Result<Option<FeatureAccumulator>>;
}

/// What the serving layer needs of the serving database.
#[async_trait]
pub trait ServingStore: Send + Sync {
    async fn ping(&self) -> Result<()>;
    async fn movies(
        &self,
        filter: &MovieFilter,
        sort: MovieSort,
        page: Page,
    ) -> Result<(Vec<MovieRow>, u64)>;
    async fn movie(&self, movie_id: u64) -> Result<Option<(MovieRow, Option<TopRow>)>>;
    async fn top(&self, filter: &MovieFilter, page: Page) -> Result<(Vec<TopRow>, u64)>;
    /// The batch's personalized list of a user, best first (empty: none published).
    async fn user_recommendations(&self, user_id: u64, k: u64) -> Result<Vec<ScoredRow>>;
    /// The movies most similar to one, most similar first.
    async fn similar_movies(&self, movie_id: u64, k: u64) -> Result<Vec<ScoredRow>>;
    /// The catalogue rows of these movies (unknown ids left out), in no order.
    async fn movies_by_id(&self, ids: &[u64]) -> Result<Vec<MovieRow>>;
    /// Every catalogue row, in no order.
    async fn all_movies(&self) -> Result<Vec<MovieRow>>;
    /// A number that changes whenever the catalogue rows may have: the
    /// batch publishes them and then records its run.
    async fn catalogue_version(&self) -> Result<u64>;
    async fn user_features(&self, user_id: u64) -> Result<Option<movierec_core::Features>>;
    async fn stats(&self) -> Result<Stats>;
    async fn batch_runs(&self, limit: u64) -> Result<Vec<BatchRun>>;
}
