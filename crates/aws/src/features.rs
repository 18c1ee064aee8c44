//! Real-time user and movie features in DynamoDB, exactly once.
//!
//! Three tables (made by `setup-aws`):
//! - `movie-rec-ratings` (`user_id` hash, `movie_id` range): the current
//!   rating of each pair, with the source partition and the highest offset of
//!   that pair's events it reflects;
//! - `movie-rec-user-features` / `movie-rec-movie-features`: the seed's item
//!   (`avg_rating`, `rating_count`, `std_dev`, `last_update` as ISO-8601) plus
//!   the exact integer accumulators they derive from (`sum_half`,
//!   `sum_sq_quarter`, `last_update_ms`), per-partition watermarks (`applied`,
//!   a map `"topic/partition" -> offset`) and a `version` for optimistic
//!   concurrency.
//!
//! Per batch: read the rating rows of its pairs, plan with
//! [`movierec_core::idempotent`], write each touched feature item with a
//! conditional put (`version` as read; a lost race re-reads and re-plans that
//! item), and only then the rating rows. Why that order makes a replay
//! harmless is argued in the core module. No DynamoDB transactions: they cap
//! at 100 items, cost double, and moto copies every table per transaction.
//!
//! The lakehouse batch adds its own view beside the stream's: a `batch` map
//! (the features recomputed from the lake, its snapshot date and run). It
//! never touches the stream's fields: the stream's state is exact, and
//! overwriting it from a lake snapshot would drop events that arrived after
//! the snapshot and break the watermarks. The stream's writes carry the map
//! over, and the batch's update bumps `version` so a stream write planned on
//! an older read loses its condition and re-reads.

use crate::Aws;
use crate::error::classify;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use futures_util::{StreamExt, TryStreamExt};
use movierec_core::idempotent::{
    Positioned, RatingRow, RowOrigin, RowWrite, Transition, plan_idempotent, unapplied,
};
use movierec_core::{CurrentRating, EventTime, FeatureAccumulator, Rating};
use movierec_store::{ApplyOutcome, StoreError, StreamBatch};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

/// Requests in flight at once (DynamoDB scales out; moto is one process).
const CONCURRENCY: usize = 16;
/// BatchGetItem takes at most 100 keys, BatchWriteItem 25 items.
const GET_CHUNK: usize = 100;
const WRITE_CHUNK: usize = 25;

/// A feature table: which one, and its key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeatureKind {
    User,
    Movie,
}

impl FeatureKind {
    fn key(self) -> &'static str {
        match self {
            Self::User => "user_id",
            Self::Movie => "movie_id",
        }
    }
}

/// A feature item as read: what the accumulators hold, the watermarks of
/// every topic, and the version to condition the next write on.
#[derive(Debug, Clone, Default)]
struct FeatureItem {
    accumulator: FeatureAccumulator,
    applied: BTreeMap<String, i64>,
    version: Option<u64>,
    /// The lakehouse batch's view, carried over unchanged.
    batch: Option<AttributeValue>,
}

/// DynamoDB requests made, by operation: what on-demand billing charges for.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub batch_get_item: AtomicU64,
    pub get_item: AtomicU64,
    pub put_item: AtomicU64,
    pub update_item: AtomicU64,
    /// Conditional puts refused because another writer got there first.
    pub put_item_conflicts: AtomicU64,
    pub batch_write_item: AtomicU64,
}

impl RequestCounts {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "{} BatchGetItem, {} GetItem, {} PutItem ({} lost a race and were redone), {} BatchWriteItem",
            get(&self.batch_get_item),
            get(&self.get_item),
            get(&self.put_item),
            get(&self.put_item_conflicts),
            get(&self.batch_write_item)
        )
    }
}

/// Writes real-time features to DynamoDB; one of the two halves of the aws
/// mode sink (the bronze layer is the other).
pub struct FeatureSink {
    client: aws_sdk_dynamodb::Client,
    endpoint: String,
    users: String,
    movies: String,
    ratings: String,
    requests: RequestCounts,
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

fn sink_error(error: crate::AwsError) -> StoreError {
    StoreError::Sink(error.to_string())
}

fn watermark_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

impl Aws {
    pub fn feature_sink(&self) -> FeatureSink {
        let tables = &self.config.dynamodb;
        FeatureSink {
            client: self.dynamodb.clone(),
            endpoint: self.endpoint(),
            users: tables.user_features_table.clone(),
            movies: tables.movie_features_table.clone(),
            ratings: tables.ratings_table.clone(),
            requests: RequestCounts::default(),
        }
    }
}

/// What a batch refresh did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchRefresh {
    pub items: u64,
    /// Items whose stream count differs from the lake's (events after the
    /// snapshot, or drift worth a look).
    pub differing: u64,
    /// Items the lake has and the stream never wrote (e.g. a table made again).
    pub stream_missing: u64,
}

impl FeatureSink {
    /// Sets the `batch` map of every user and movie item to the lakehouse
    /// batch's features (one UpdateItem each, CONCURRENCY in flight),
    /// leaving the stream's fields alone; counts where the two views differ.
    pub async fn refresh_batch_features(
        &self,
        users: &[(u64, FeatureAccumulator)],
        movies: &[(u64, FeatureAccumulator)],
        snapshot_date: &str,
        run_id: &str,
    ) -> Result<BatchRefresh, StoreError> {
        // Owned items: a stream of borrowing closures is not provably Send.
        let work: Vec<(FeatureKind, u64, FeatureAccumulator)> = users
            .iter()
            .map(|&(id, acc)| (FeatureKind::User, id, acc))
            .chain(
                movies
                    .iter()
                    .map(|&(id, acc)| (FeatureKind::Movie, id, acc)),
            )
            .collect();
        let results: Vec<(bool, bool)> = futures_util::stream::iter(work)
            .map(|(kind, id, acc)| self.refresh_item(kind, id, acc, snapshot_date, run_id))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(BatchRefresh {
            items: results.len() as u64,
            differing: results.iter().filter(|r| r.0).count() as u64,
            stream_missing: results.iter().filter(|r| r.1).count() as u64,
        })
    }

    /// Returns (the stream's count differs, the stream never wrote the item).
    async fn refresh_item(
        &self,
        kind: FeatureKind,
        id: u64,
        acc: FeatureAccumulator,
        snapshot_date: &str,
        run_id: &str,
    ) -> Result<(bool, bool), StoreError> {
        let table = self.table(kind);
        let features = acc.features();
        let batch = AttributeValue::M(HashMap::from([
            ("rating_count".into(), n(features.rating_count)),
            ("avg_rating".into(), n(features.avg_rating)),
            ("std_dev".into(), n(features.std_dev)),
            (
                "last_update".into(),
                AttributeValue::S(features.last_update.to_iso8601()),
            ),
            (
                "snapshot_date".into(),
                AttributeValue::S(snapshot_date.into()),
            ),
            ("run_id".into(), AttributeValue::S(run_id.into())),
        ]));
        RequestCounts::bump(&self.requests.update_item);
        let out = self
            .client
            .update_item()
            .table_name(table)
            .key(kind.key(), n(id))
            .update_expression("SET #batch = :batch ADD #version :one")
            .expression_attribute_names("#batch", "batch")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":batch", batch)
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| sink_error(classify(e, &self.endpoint, "dynamodb:UpdateItem", table)))?;
        let stream_count = out
            .attributes()
            .and_then(|item| number::<u64>(item, "rating_count"));
        Ok((stream_count != Some(acc.count), stream_count.is_none()))
    }

    /// The requests made so far.
    pub fn requests(&self) -> &RequestCounts {
        &self.requests
    }

    fn table(&self, kind: FeatureKind) -> &str {
        match kind {
            FeatureKind::User => &self.users,
            FeatureKind::Movie => &self.movies,
        }
    }

    /// Items by key, read consistently, 100 keys a request, unprocessed keys
    /// asked again.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let chunks: Vec<Vec<Item>> = keys.chunks(GET_CHUNK).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> = futures_util::stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(table, chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        let mut pending = Some(keys);
        let mut round = 0u32;
        while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Sink(e.to_string()))?;
            RequestCounts::bump(&self.requests.batch_get_item);
            let out = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| {
                    sink_error(classify(e, &self.endpoint, "dynamodb:BatchGetItem", table))
                })?;
            if let Some(found) = out.responses().and_then(|r| r.get(table)) {
                items.extend(found.iter().cloned());
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map(|k| k.keys().to_vec());
            if pending.as_ref().is_some_and(|k| !k.is_empty()) {
                // Throttled: back off before asking for the rest.
                round += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(round.min(20)))).await;
            }
        }
        Ok(items)
    }

    /// A user's current ratings, (movie, rating), from the ratings table:
    /// what fold-in starts from in aws mode.
    pub async fn user_ratings(&self, user_id: u64) -> Result<Vec<(u64, f64)>, StoreError> {
        let table = &self.ratings;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("user_id = :u")
                .expression_attribute_values(":u", n(user_id))
                .projection_expression("movie_id, rating_half")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sink_error(classify(e, &self.endpoint, "dynamodb:Query", table)))?;
            for item in page.items() {
                if let (Some(movie), Some(half)) = (
                    number::<u64>(item, "movie_id"),
                    number::<u8>(item, "rating_half"),
                ) {
                    out.push((movie, f64::from(half) / 2.0));
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The stored rating rows of `pairs`; `origin` only for rows written from `topic`.
    async fn read_rows(
        &self,
        topic: &str,
        pairs: &BTreeSet<(u64, u64)>,
    ) -> Result<HashMap<(u64, u64), RatingRow>, StoreError> {
        let keys = pairs
            .iter()
            .map(|&(u, m)| Item::from([("user_id".into(), n(u)), ("movie_id".into(), n(m))]))
            .collect();
        let mut rows = HashMap::with_capacity(pairs.len());
        for item in self.batch_get(&self.ratings, keys).await? {
            let parsed = (|| {
                let key = (number(&item, "user_id")?, number(&item, "movie_id")?);
                let rating = Rating::from_half_stars(number(&item, "rating_half")?).ok()?;
                let timestamp = EventTime(number(&item, "ts_ms")?);
                let origin = match item.get("source_topic") {
                    Some(AttributeValue::S(t)) if t == topic => Some(RowOrigin {
                        partition: number(&item, "source_partition")?,
                        applied_through: number(&item, "applied_through")?,
                    }),
                    _ => None,
                };
                Some((
                    key,
                    RatingRow {
                        rating: CurrentRating { rating, timestamp },
                        origin,
                    },
                ))
            })();
            match parsed {
                Some((key, row)) => {
                    rows.insert(key, row);
                }
                None => {
                    return Err(StoreError::Sink(format!(
                        "table {}: unreadable rating row {item:?} (needs user_id, movie_id, \
                         rating_half, ts_ms): was it written by another program?",
                        self.ratings
                    )));
                }
            }
        }
        Ok(rows)
    }

    async fn read_features(
        &self,
        kind: FeatureKind,
        ids: impl Iterator<Item = u64>,
    ) -> Result<HashMap<u64, FeatureItem>, StoreError> {
        let keys = ids
            .map(|id| Item::from([(kind.key().into(), n(id))]))
            .collect();
        let mut items = HashMap::new();
        for item in self.batch_get(self.table(kind), keys).await? {
            if let Some(id) = number(&item, kind.key()) {
                items.insert(id, parse_feature_item(&item));
            }
        }
        Ok(items)
    }

    /// Adds to one feature item what it has not taken of `transitions`,
    /// conditional on the version read; a lost race re-reads and retries.
    async fn write_feature(
        &self,
        kind: FeatureKind,
        id: u64,
        topic: &str,
        transitions: &[&Transition],
        mut item: FeatureItem,
    ) -> Result<bool, StoreError> {
        let table = self.table(kind);
        for attempt in 0..50u32 {
            let prefix = format!("{topic}/");
            let marks: BTreeMap<i32, i64> = item
                .applied
                .iter()
                .filter_map(|(k, &v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v)))
                .collect();
            let Some((delta, raised)) = unapplied(transitions.iter().copied(), &marks) else {
                return Ok(false); // a replay: this item holds all of them
            };
            let mut accumulator = item.accumulator;
            delta.apply_to(&mut accumulator);
            let mut applied = item.applied.clone();
            for (partition, offset) in raised {
                applied.insert(watermark_key(topic, partition), offset);
            }
            let version = item.version.map_or(1, |v| v + 1);
            let features = accumulator.features();
            let mut new_item = Item::from([
                (kind.key().to_string(), n(id)),
                ("rating_count".into(), n(features.rating_count)),
                ("avg_rating".into(), n(features.avg_rating)),
                ("std_dev".into(), n(features.std_dev)),
                (
                    "last_update".into(),
                    AttributeValue::S(features.last_update.to_iso8601()),
                ),
                ("last_update_ms".into(), n(accumulator.last_update_ms)),
                ("sum_half".into(), n(accumulator.sum_half)),
                ("sum_sq_quarter".into(), n(accumulator.sum_sq_quarter)),
                (
                    "applied".into(),
                    AttributeValue::M(applied.into_iter().map(|(k, v)| (k, n(v))).collect()),
                ),
                ("version".into(), n(version)),
            ]);
            if let Some(batch) = &item.batch {
                new_item.insert("batch".into(), batch.clone());
            }
            let mut put = self
                .client
                .put_item()
                .table_name(table)
                .set_item(Some(new_item));
            put = match item.version {
                Some(read) => put
                    .condition_expression("version = :read")
                    .expression_attribute_values(":read", n(read)),
                None => put
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", kind.key()),
            };
            RequestCounts::bump(&self.requests.put_item);
            match put.send().await {
                Ok(_) => return Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    // Another partition's consumer wrote it since: take its
                    // version and plan this item again.
                    tracing::debug!(
                        table,
                        id,
                        attempt,
                        "feature item changed under us; retrying"
                    );
                    item = self.get_feature_item(kind, id).await?;
                }
                Err(e) => {
                    return Err(sink_error(classify(
                        e,
                        &self.endpoint,
                        "dynamodb:PutItem",
                        table,
                    )));
                }
            }
        }
        Err(StoreError::Sink(format!(
            "table {table}: item {id} kept changing under 50 conditional writes in a row"
        )))
    }

    async fn get_feature_item(
        &self,
        kind: FeatureKind,
        id: u64,
    ) -> Result<FeatureItem, StoreError> {
        let table = self.table(kind);
        RequestCounts::bump(&self.requests.get_item);
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(kind.key(), n(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sink_error(classify(e, &self.endpoint, "dynamodb:GetItem", table)))?;
        Ok(out.item().map(parse_feature_item).unwrap_or_default())
    }

    async fn write_features(
        &self,
        kind: FeatureKind,
        topic: &str,
        by_id: &BTreeMap<u64, Vec<&Transition>>,
    ) -> Result<usize, StoreError> {
        let mut read = self.read_features(kind, by_id.keys().copied()).await?;
        // Futures made up front: a closure inside the stream trips the
        // compiler's higher-ranked lifetime check under async_trait.
        let writes: Vec<_> = by_id
            .iter()
            .map(|(&id, transitions)| {
                let item = read.remove(&id).unwrap_or_default();
                self.write_feature(kind, id, topic, transitions, item)
            })
            .collect();
        let written: Vec<bool> = futures_util::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(written.into_iter().filter(|w| *w).count())
    }

    async fn write_rows(&self, topic: &str, rows: &[RowWrite]) -> Result<(), StoreError> {
        let requests: Vec<WriteRequest> = rows
            .iter()
            .map(|w| {
                let origin = w.row.origin.expect("planned rows carry their origin");
                let rating = w.row.rating;
                let item = Item::from([
                    ("user_id".into(), n(w.user_id)),
                    ("movie_id".into(), n(w.movie_id)),
                    ("rating".into(), n(rating.rating.value())),
                    ("rating_half".into(), n(rating.rating.half_stars())),
                    (
                        "timestamp".into(),
                        AttributeValue::S(rating.timestamp.to_iso8601()),
                    ),
                    ("ts_ms".into(), n(rating.timestamp.millis())),
                    ("source_topic".into(), AttributeValue::S(topic.to_string())),
                    ("source_partition".into(), n(origin.partition)),
                    ("applied_through".into(), n(origin.applied_through)),
                ]);
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| StoreError::Sink(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(WRITE_CHUNK)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        futures_util::stream::iter(chunks)
            .map(|chunk| self.batch_write_chunk(chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn batch_write_chunk(&self, chunk: Vec<WriteRequest>) -> Result<(), StoreError> {
        let table = &self.ratings;
        let mut pending = chunk;
        let mut round = 0u32;
        while !pending.is_empty() {
            RequestCounts::bump(&self.requests.batch_write_item);
            let out = self
                .client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| {
                    sink_error(classify(
                        e,
                        &self.endpoint,
                        "dynamodb:BatchWriteItem",
                        table,
                    ))
                })?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            if !pending.is_empty() {
                round += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(round.min(20)))).await;
            }
        }
        Ok(())
    }
}

fn parse_feature_item(item: &Item) -> FeatureItem {
    let accumulator = FeatureAccumulator {
        count: number(item, "rating_count").unwrap_or(0),
        sum_half: number(item, "sum_half").unwrap_or(0),
        sum_sq_quarter: number(item, "sum_sq_quarter").unwrap_or(0),
        last_update_ms: number(item, "last_update_ms").unwrap_or(0),
    };
    let applied = match item.get("applied") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .filter_map(|(k, v)| match v {
                AttributeValue::N(text) => Some((k.clone(), text.parse().ok()?)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    FeatureItem {
        accumulator,
        applied,
        version: number(item, "version"),
        batch: item.get("batch").cloned(),
    }
}

impl FeatureSink {
    /// Writes a batch's features (one half of [`crate::AwsSink`]).
    pub async fn write(&self, batch: StreamBatch<'_>) -> movierec_store::Result<ApplyOutcome> {
        let pairs: BTreeSet<(u64, u64)> = batch
            .events
            .iter()
            .map(|s| (s.event.user_id, s.event.movie_id))
            .collect();
        let rows = self.read_rows(batch.topic, &pairs).await?;
        let plan = plan_idempotent(
            batch.events.iter().map(|s| Positioned {
                partition: s.partition,
                offset: s.offset,
                event: &s.event,
            }),
            &rows,
        );
        let mut users: BTreeMap<u64, Vec<&Transition>> = BTreeMap::new();
        let mut movies: BTreeMap<u64, Vec<&Transition>> = BTreeMap::new();
        for t in &plan.transitions {
            users.entry(t.user_id).or_default().push(t);
            movies.entry(t.movie_id).or_default().push(t);
        }
        // Every feature item before any rating row: the order the replay
        // argument rests on.
        let (users_written, movies_written) = futures_util::try_join!(
            self.write_features(FeatureKind::User, batch.topic, &users),
            self.write_features(FeatureKind::Movie, batch.topic, &movies),
        )?;
        self.write_rows(batch.topic, &plan.rows).await?;
        tracing::debug!(
            accepted = plan.accepted,
            superseded = plan.superseded,
            replayed = plan.replayed,
            users_written,
            movies_written,
            rows = plan.rows.len(),
            "features written to DynamoDB"
        );
        Ok(ApplyOutcome {
            accepted: plan.accepted,
            superseded: plan.superseded,
            replayed: plan.replayed,
            ratings_written: plan.rows.len(),
        })
    }
}
