//! The DynamoDB side of the warehouse export's change sources
//! (`movierec_export::change`): [`DynamoDbChangeStream`] follows the feature
//! tables' DynamoDB Streams, every shard of both tables, parents before their
//! children; [`DynamoDbTableScan`] pages through a feature table (`cdc
//! backfill`).
//!
//! Records become [`Change`]s without judging their values: each of
//! [`VALUE_COLUMNS`] travels as the item holds it (a number's text, a
//! string as it is), so a malformed item reaches the warehouse, which
//! rejects and isolates it, instead of vanishing here.
//!
//! The stream's position is kept per table and shard: the sequence number of
//! the last record [`ChangeStream::poll`] returned, and the shards read to
//! their end. [`ChangeStream::checkpoint`] is
//! `{"tables": {"<table>": {"stream_arn": …, "shards": {"<shard>": "<seq>"},
//! "done": ["<shard>", …]}}}`. Nothing is read ahead: `poll` asks DynamoDB
//! for at most what it may return, so the checkpoint is exactly what was
//! returned.

use crate::Aws;
use crate::error::classify;
use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use movierec_export::{
    Change, ChangeStream, FeatureTable, Op, ShardLag, SourceError, TableScan, VALUE_COLUMNS,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How often the shards of a table are listed again once every known shard
/// is caught up (new shards come from splits, about every four hours on AWS).
const RELIST_EVERY: Duration = Duration::from_secs(5);
/// GetRecords returns at most 1,000 records a call.
const MAX_RECORDS_PER_CALL: usize = 1000;

/// The stream of each feature table, as `setup-aws` enables it.
fn feature_tables(aws: &Aws) -> Vec<(FeatureTable, String)> {
    let dynamodb = &aws.config.dynamodb;
    vec![
        (
            FeatureTable::UserFeatures,
            dynamodb.user_features_table.clone(),
        ),
        (
            FeatureTable::MovieFeatures,
            dynamodb.movie_features_table.clone(),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Shard order

/// A shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
    /// Has an ending sequence number: split (or the stream disabled), and
    /// readable to its end.
    closed: bool,
}

/// The shards to read now, in listing order: those not done whose parent is
/// done or no longer listed (trimmed after 24 hours), so that a row's
/// changes are read in order across a split.
///
/// moto keeps one shard per table and never splits it, so the integration
/// test cannot reach splits or lineage: the unit tests of this function are
/// where they are tested.
fn readable_shards(shards: &[ShardInfo], done: &BTreeSet<String>) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    shards
        .iter()
        .filter(|s| !done.contains(&s.id))
        .filter(|s| match &s.parent {
            None => true,
            Some(parent) => done.contains(parent) || !listed.contains(parent.as_str()),
        })
        .map(|s| s.id.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Attribute values → text

/// DynamoDB's and DynamoDB Streams' `AttributeValue` (two types with the
/// same variants), as the export reads them.
trait Attribute {
    /// A number's or a string's text as stored.
    fn scalar(&self) -> Option<&str>;
    fn is_null(&self) -> bool;
    /// A compact, JSON-like rendering (numbers unquoted and unchanged, map
    /// keys sorted, binary as base64).
    fn render(&self, out: &mut String);
}

macro_rules! attribute {
    ($type:ty) => {
        impl Attribute for $type {
            fn scalar(&self) -> Option<&str> {
                match self {
                    Self::N(text) | Self::S(text) => Some(text),
                    _ => None,
                }
            }

            fn is_null(&self) -> bool {
                matches!(self, Self::Null(_))
            }

            fn render(&self, out: &mut String) {
                match self {
                    Self::N(number) => out.push_str(number),
                    Self::S(text) => quote(text, out),
                    Self::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
                    Self::Null(_) => out.push_str("null"),
                    Self::B(blob) => quote(&base64(blob.as_ref()), out),
                    Self::Ns(numbers) => list(numbers, ('[', ']'), out, |n, out| out.push_str(n)),
                    Self::Ss(texts) => list(texts, ('[', ']'), out, |s, out| quote(s, out)),
                    Self::Bs(blobs) => list(blobs, ('[', ']'), out, |b, out| {
                        quote(&base64(b.as_ref()), out)
                    }),
                    Self::L(values) => list(values, ('[', ']'), out, |v, out| v.render(out)),
                    Self::M(map) => {
                        let mut entries: Vec<_> = map.iter().collect();
                        entries.sort_by(|a, b| a.0.cmp(b.0));
                        list(&entries, ('{', '}'), out, |(k, v), out| {
                            quote(k, out);
                            out.push(':');
                            v.render(out);
                        });
                    }
                    _ => out.push_str("\"?\""),
                }
            }
        }
    };
}

attribute!(aws_sdk_dynamodb::types::AttributeValue);
attribute!(aws_sdk_dynamodbstreams::types::AttributeValue);

fn quote(text: &str, out: &mut String) {
    // A JSON string literal; serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

fn list<T>(
    items: &[T],
    (open, close): (char, char),
    out: &mut String,
    each: impl Fn(&T, &mut String),
) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(item, out);
    }
    out.push(close);
}

fn base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

/// An attribute's text for the export: a number's or a string's text as
/// stored, anything else rendered compactly; missing (or NULL): empty.
fn text<A: Attribute>(value: Option<&A>) -> String {
    match value {
        None => String::new(),
        Some(value) if value.is_null() => String::new(),
        Some(value) => match value.scalar() {
            Some(text) => text.to_string(),
            None => {
                let mut out = String::new();
                value.render(&mut out);
                out
            }
        },
    }
}

/// About the size DynamoDB counts for an item: names plus values.
fn image_size<A: Attribute>(image: &HashMap<String, A>) -> usize {
    image
        .iter()
        .map(|(name, value)| {
            name.len()
                + match value.scalar() {
                    Some(text) => text.len(),
                    None => {
                        let mut out = String::new();
                        value.render(&mut out);
                        out.len()
                    }
                }
        })
        .sum()
}

/// The `version` attribute's text, `0` when the item has none.
fn version<A: Attribute>(image: Option<&HashMap<String, A>>) -> String {
    let version = text(image.and_then(|i| i.get("version")));
    if version.is_empty() {
        "0".to_string()
    } else {
        version
    }
}

/// One stream record as a change: INSERT and MODIFY upsert the new image,
/// REMOVE deletes the key (with the old image's version). An error says why
/// the record cannot be one (no key, no new image, an unknown event).
fn record_change(table: FeatureTable, record: &Record) -> Result<Change, String> {
    let data = record
        .dynamodb()
        .ok_or_else(|| "the record has no dynamodb part".to_string())?;
    let key_column = table.key_column();
    let op = match record.event_name() {
        Some(OperationType::Insert | OperationType::Modify) => Op::Upsert,
        Some(OperationType::Remove) => Op::Delete,
        other => return Err(format!("unknown event name {other:?}")),
    };
    let image = match op {
        Op::Upsert => Some(data.new_image().ok_or_else(|| {
            "an INSERT/MODIFY record without NewImage (is the stream's view type \
             NEW_AND_OLD_IMAGES?)"
                .to_string()
        })?),
        Op::Delete => data.old_image(),
    };
    let key = text(
        data.keys()
            .and_then(|k| k.get(key_column))
            .or_else(|| image.and_then(|i| i.get(key_column))),
    );
    if key.is_empty() {
        return Err(format!("the record has no key attribute {key_column}"));
    }
    let values = match (op, image) {
        (Op::Upsert, Some(image)) => VALUE_COLUMNS.iter().map(|c| text(image.get(*c))).collect(),
        _ => Vec::new(),
    };
    let source_bytes = match data.size_bytes() {
        Some(size) if size > 0 => usize::try_from(size).unwrap_or(usize::MAX),
        _ => image.or(data.keys()).map_or(0, image_size),
    };
    Ok(Change {
        table,
        key,
        op,
        version: version(image),
        values,
        source_bytes,
    })
}

/// A scanned item as an upsert with its current version.
fn item_change(
    table: FeatureTable,
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<Change, String> {
    let key_column = table.key_column();
    let key = text(item.get(key_column));
    if key.is_empty() {
        return Err(format!("the item has no key attribute {key_column}"));
    }
    Ok(Change {
        table,
        key,
        op: Op::Upsert,
        version: version(Some(item)),
        values: VALUE_COLUMNS.iter().map(|c| text(item.get(*c))).collect(),
        source_bytes: image_size(item),
    })
}

// ---------------------------------------------------------------------------
// The change stream

/// Where one table's stream is read.
#[derive(Debug)]
struct TableStream {
    table: FeatureTable,
    name: String,
    /// Set by `resume`.
    stream_arn: Option<String>,
    /// The last listing, and when it was made.
    shards: Vec<ShardInfo>,
    listed_at: Option<Instant>,
    /// A shard finished (or vanished): list again before the next read.
    relist: bool,
    /// Per shard: the sequence number of the last record returned.
    positions: BTreeMap<String, String>,
    /// Shards read to their end.
    done: BTreeSet<String>,
    /// Per shard: the iterator to read next with.
    iterators: HashMap<String, String>,
}

impl TableStream {
    fn new(table: FeatureTable, name: String) -> Self {
        Self {
            table,
            name,
            stream_arn: None,
            shards: Vec::new(),
            listed_at: None,
            relist: false,
            positions: BTreeMap::new(),
            done: BTreeSet::new(),
            iterators: HashMap::new(),
        }
    }

    fn start(&mut self, stream_arn: String, saved: Option<SavedTable>) {
        *self = Self::new(self.table, std::mem::take(&mut self.name));
        self.stream_arn = Some(stream_arn);
        if let Some(saved) = saved {
            self.positions = saved.shards;
            self.done = saved.done;
        }
    }

    fn needs_listing(&self) -> bool {
        self.listed_at.is_none() || self.relist
    }

    /// Takes a new listing: forgets the shards no longer listed (trimmed),
    /// warning about one that was not read to its end.
    fn apply_listing(&mut self, shards: Vec<ShardInfo>) {
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for (shard, sequence) in &self.positions {
            if !listed.contains(shard.as_str()) && !self.done.contains(shard) {
                tracing::warn!(
                    table = %self.name,
                    shard = %shard,
                    "the shard was trimmed from the stream (older than 24 h) before it was read \
                     to its end: records after sequence number {sequence} may have been lost \
                     (`cdc backfill` re-exports the table)"
                );
            }
        }
        self.positions.retain(|id, _| listed.contains(id.as_str()));
        self.done.retain(|id| listed.contains(id.as_str()));
        self.iterators.retain(|id, _| listed.contains(id.as_str()));
        self.shards = shards;
        self.listed_at = Some(Instant::now());
        self.relist = false;
    }

    fn checkpoint(&self) -> Option<Value> {
        let arn = self.stream_arn.as_ref()?;
        Some(json!({
            "stream_arn": arn,
            "shards": self.positions,
            "done": self.done,
        }))
    }
}

/// One table's part of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct SavedTable {
    stream_arn: String,
    shards: BTreeMap<String, String>,
    done: BTreeSet<String>,
}

/// Reads a checkpoint as [`ChangeStream::checkpoint`] writes it.
fn parse_checkpoint(checkpoint: &Value) -> Result<BTreeMap<String, SavedTable>, String> {
    let expected =
        r#"expected {"tables": {"<table>": {"stream_arn": "…", "shards": {…}, "done": […]}}}"#;
    let tables = checkpoint
        .get("tables")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("not a DynamoDB Streams checkpoint ({expected}): {checkpoint}"))?;
    let mut saved = BTreeMap::new();
    for (name, table) in tables {
        let bad = |what: &str| format!("table {name} in the checkpoint: {what} ({expected})");
        let stream_arn = table
            .get("stream_arn")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no stream_arn"))?
            .to_string();
        let mut shards = BTreeMap::new();
        if let Some(positions) = table.get("shards") {
            let positions = positions
                .as_object()
                .ok_or_else(|| bad("shards is not an object"))?;
            for (shard, sequence) in positions {
                let sequence = sequence
                    .as_str()
                    .ok_or_else(|| bad("a sequence number is not a string"))?;
                shards.insert(shard.clone(), sequence.to_string());
            }
        }
        let mut done = BTreeSet::new();
        if let Some(finished) = table.get("done") {
            let finished = finished
                .as_array()
                .ok_or_else(|| bad("done is not a list"))?;
            for shard in finished {
                let shard = shard
                    .as_str()
                    .ok_or_else(|| bad("a done shard is not a string"))?;
                done.insert(shard.to_string());
            }
        }
        saved.insert(
            name.clone(),
            SavedTable {
                stream_arn,
                shards,
                done,
            },
        );
    }
    Ok(saved)
}

/// The feature tables' DynamoDB Streams (see the module's documentation).
///
/// Every shard of both tables is read; a shard from a split only after its
/// parent was read to its end (or trimmed). The shards are listed again when
/// a shard finishes and, while everything is caught up, every few seconds.
/// An expired iterator is renewed after the last record read; a position
/// trimmed away (24 hours) restarts its shard at the oldest record kept, and
/// a stream other than the checkpoint's (the stream was disabled and enabled
/// again) restarts its table there: both with a warning that records may
/// have been lost.
#[derive(Debug)]
pub struct DynamoDbChangeStream {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    endpoint: String,
    tables: Vec<TableStream>,
    resumed: bool,
    /// Rotates where each poll starts, so that no shard starves another.
    turn: usize,
}

/// What one GetRecords call did.
enum Read {
    /// Records were returned (maybe none that became changes).
    Records,
    /// Nothing now: caught up.
    Empty,
    /// The shard is closed and read to its end.
    Finished,
}

impl DynamoDbChangeStream {
    /// The streams of `aws.dynamodb.user_features_table` and
    /// `movie_features_table`. Nothing is called before
    /// [`ChangeStream::resume`].
    pub fn new(aws: &Aws) -> Self {
        Self {
            dynamodb: aws.dynamodb.clone(),
            streams: aws.dynamodbstreams.clone(),
            endpoint: aws.endpoint(),
            tables: feature_tables(aws)
                .into_iter()
                .map(|(table, name)| TableStream::new(table, name))
                .collect(),
            resumed: false,
            turn: 0,
        }
    }

    /// Lists one table's shards and takes the listing.
    async fn list(&mut self, t: usize) -> Result<(), SourceError> {
        let table = &self.tables[t];
        let Some(arn) = table.stream_arn.clone() else {
            return Ok(());
        };
        let shards = list_shards(&self.streams, &self.endpoint, &table.name, &arn).await?;
        self.tables[t].apply_listing(shards);
        Ok(())
    }

    /// An iterator for a shard: after its last record read, or at its oldest
    /// record kept. `None` when the shard has nothing more to give.
    async fn iterator(&mut self, t: usize, shard: &str) -> Result<Option<String>, SourceError> {
        let table = &self.tables[t];
        let name = table.name.clone();
        let arn = table.stream_arn.clone().unwrap_or_default();
        let position = table.positions.get(shard).cloned();
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard);
        let request = match &position {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match request.send().await {
            Ok(out) => Ok(out.shard_iterator().map(String::from)),
            Err(e)
                if position.is_some()
                    && e.as_service_error()
                        .is_some_and(|s| s.is_trimmed_data_access_exception()) =>
            {
                tracing::warn!(
                    table = %name,
                    shard = %shard,
                    "the checkpointed sequence number {} was trimmed from the stream (older than \
                     24 h): reading the shard again from its oldest record; records in between \
                     may have been lost (`cdc backfill` re-exports the table)",
                    position.unwrap_or_default()
                );
                self.tables[t].positions.remove(shard);
                let out = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(shard)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| {
                        stream_error(
                            &name,
                            classify(e, &self.endpoint, "dynamodb:GetShardIterator", &arn),
                        )
                    })?;
                Ok(out.shard_iterator().map(String::from))
            }
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    // The shard may have been trimmed since the listing.
                    self.tables[t].relist = true;
                }
                Err(stream_error(
                    &name,
                    classify(e, &self.endpoint, "dynamodb:GetShardIterator", &arn),
                ))
            }
        }
    }

    /// One GetRecords call on one shard, at most `limit` records, their
    /// changes appended to `out`.
    async fn read(
        &mut self,
        t: usize,
        shard: &str,
        limit: usize,
        out: &mut Vec<Change>,
    ) -> Result<Read, SourceError> {
        let limit = limit.clamp(1, MAX_RECORDS_PER_CALL) as i32;
        let mut renewed = false;
        loop {
            let iterator = match self.tables[t].iterators.get(shard) {
                Some(iterator) => iterator.clone(),
                None => match self.iterator(t, shard).await? {
                    Some(iterator) => iterator,
                    None => return Ok(self.finish(t, shard)),
                },
            };
            let answer = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
                .send()
                .await;
            let table = &mut self.tables[t];
            let response = match answer {
                Ok(response) => response,
                Err(e)
                    if !renewed
                        && e.as_service_error()
                            .is_some_and(|s| s.is_expired_iterator_exception()) =>
                {
                    // Iterators last 15 minutes: renew after the last record read.
                    table.iterators.remove(shard);
                    renewed = true;
                    continue;
                }
                Err(e)
                    if !renewed
                        && e.as_service_error()
                            .is_some_and(|s| s.is_trimmed_data_access_exception()) =>
                {
                    tracing::warn!(
                        table = %table.name,
                        shard = %shard,
                        "the stream trimmed records (older than 24 h) before they were read: \
                         reading the shard again from its oldest record; records may have been \
                         lost (`cdc backfill` re-exports the table)"
                    );
                    table.iterators.remove(shard);
                    table.positions.remove(shard);
                    renewed = true;
                    continue;
                }
                Err(e) => {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                    {
                        table.relist = true;
                    }
                    table.iterators.remove(shard);
                    let arn = table.stream_arn.clone().unwrap_or_default();
                    return Err(stream_error(
                        &table.name,
                        classify(e, &self.endpoint, "dynamodb:GetRecords", &arn),
                    ));
                }
            };
            let records = response.records();
            for record in records {
                match record_change(table.table, record) {
                    Ok(change) => out.push(change),
                    Err(why) => tracing::warn!(
                        table = %table.name,
                        shard = %shard,
                        event = record.event_id().unwrap_or("?"),
                        "a stream record skipped: {why}"
                    ),
                }
                if let Some(sequence) = record.dynamodb().and_then(|d| d.sequence_number()) {
                    table
                        .positions
                        .insert(shard.to_string(), sequence.to_string());
                }
            }
            return Ok(match response.next_shard_iterator() {
                None => self.finish(t, shard),
                Some(next) => {
                    table.iterators.insert(shard.to_string(), next.to_string());
                    if records.is_empty() {
                        Read::Empty
                    } else {
                        Read::Records
                    }
                }
            });
        }
    }

    /// A shard read to its end: its children may start, after a new listing.
    fn finish(&mut self, t: usize, shard: &str) -> Read {
        let table = &mut self.tables[t];
        table.iterators.remove(shard);
        table.done.insert(shard.to_string());
        table.relist = true;
        tracing::debug!(table = %table.name, shard, "shard read to its end");
        Read::Finished
    }
}

fn stream_error(table: &str, error: crate::AwsError) -> SourceError {
    SourceError::new(format!("DynamoDB stream of table {table}"), error)
}

/// The table's current stream, which must carry new images.
async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    endpoint: &str,
    table: &str,
) -> Result<String, SourceError> {
    let context = || format!("DynamoDB stream of table {table}");
    let out = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            SourceError::new(
                context(),
                classify(e, endpoint, "dynamodb:DescribeTable", table),
            )
        })?;
    let description = out.table();
    let specification = description.and_then(|t| t.stream_specification());
    let arn = description.and_then(|t| t.latest_stream_arn());
    match (specification, arn) {
        (Some(specification), Some(arn)) if specification.stream_enabled() => {
            use aws_sdk_dynamodb::types::StreamViewType;
            match specification.stream_view_type() {
                Some(StreamViewType::NewAndOldImages | StreamViewType::NewImage) => {
                    Ok(arn.to_string())
                }
                other => Err(SourceError::new(
                    context(),
                    format!(
                        "the table's stream has view type {}, without the new images the \
                         export needs: disable the stream (aws dynamodb update-table \
                         --table-name {table} --stream-specification StreamEnabled=false) and \
                         run `movierec setup-aws` (it enables NEW_AND_OLD_IMAGES)",
                        other.map_or("?", |v| v.as_str())
                    ),
                )),
            }
        }
        _ => Err(SourceError::new(
            context(),
            format!(
                "table {table} has no stream enabled: run `movierec setup-aws` (it enables \
                 streams with new and old images on the feature tables)"
            ),
        )),
    }
}

/// Every shard of a stream (DescribeStream, page by page).
async fn list_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    endpoint: &str,
    table: &str,
    arn: &str,
) -> Result<Vec<ShardInfo>, SourceError> {
    let mut shards = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let out = streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(after.clone())
            .send()
            .await
            .map_err(|e| {
                stream_error(table, classify(e, endpoint, "dynamodb:DescribeStream", arn))
            })?;
        let Some(description) = out.stream_description() else {
            break;
        };
        for shard in description.shards() {
            let Some(id) = shard.shard_id() else {
                continue;
            };
            shards.push(ShardInfo {
                id: id.to_string(),
                parent: shard.parent_shard_id().map(String::from),
                closed: shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            });
        }
        match description.last_evaluated_shard_id() {
            Some(last) if after.as_deref() != Some(last) => after = Some(last.to_string()),
            _ => break,
        }
    }
    Ok(shards)
}

#[async_trait]
impl ChangeStream for DynamoDbChangeStream {
    fn describe(&self) -> String {
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|t| match &t.stream_arn {
                Some(arn) => format!("{} ({arn})", t.name),
                None => t.name.clone(),
            })
            .collect();
        format!("DynamoDB Streams of {}", tables.join(", "))
    }

    async fn resume(&mut self, checkpoint: Option<Value>) -> Result<(), SourceError> {
        let mut saved = match &checkpoint {
            Some(checkpoint) => parse_checkpoint(checkpoint)
                .map_err(|e| SourceError::new("resuming the DynamoDB change stream", e))?,
            None => BTreeMap::new(),
        };
        // Every stream first: a failure leaves the state as it was.
        let mut arns = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            arns.push(latest_stream_arn(&self.dynamodb, &self.endpoint, &table.name).await?);
        }
        for (table, arn) in self.tables.iter_mut().zip(arns) {
            let restored = match saved.remove(&table.name) {
                Some(saved) if saved.stream_arn == arn => Some(saved),
                Some(saved) => {
                    tracing::warn!(
                        table = %table.name,
                        "the table's stream is {arn}, not the checkpoint's {} (the stream was \
                         disabled and enabled again): reading the new stream from its oldest \
                         record; changes between the two streams may have been lost (`cdc \
                         backfill` re-exports the table)",
                        saved.stream_arn
                    );
                    None
                }
                None => None,
            };
            table.start(arn, restored);
        }
        self.resumed = true;
        Ok(())
    }

    async fn poll(&mut self, max: usize) -> Result<Vec<Change>, SourceError> {
        if !self.resumed {
            return Err(SourceError::new(
                "DynamoDB change stream",
                "poll before resume: call resume (with the saved checkpoint, or None) first",
            ));
        }
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        // Shards that had nothing in this poll.
        let mut idle: HashSet<(usize, String)> = HashSet::new();
        let mut relisted = false;
        loop {
            for t in 0..self.tables.len() {
                if self.tables[t].needs_listing() {
                    self.list(t).await?;
                }
            }
            let mut candidates: Vec<(usize, String)> = (0..self.tables.len())
                .flat_map(|t| {
                    let table = &self.tables[t];
                    readable_shards(&table.shards, &table.done)
                        .into_iter()
                        .map(move |shard| (t, shard))
                })
                .filter(|candidate| !idle.contains(candidate))
                .collect();
            if candidates.is_empty() {
                // Caught up: look for new shards, every few seconds at most.
                if relisted {
                    break;
                }
                relisted = true;
                let mut any = false;
                for t in 0..self.tables.len() {
                    if self.tables[t]
                        .listed_at
                        .is_none_or(|at| at.elapsed() >= RELIST_EVERY)
                    {
                        self.list(t).await?;
                        any = true;
                    }
                }
                if !any {
                    break;
                }
                continue;
            }
            let turn = self.turn % candidates.len();
            candidates.rotate_left(turn);
            self.turn = self.turn.wrapping_add(1);
            for (t, shard) in candidates {
                if out.len() >= max {
                    return Ok(out);
                }
                let remaining = max - out.len();
                if let Read::Empty = self.read(t, &shard, remaining, &mut out).await? {
                    idle.insert((t, shard));
                }
            }
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    fn checkpoint(&self) -> Value {
        let tables: serde_json::Map<String, Value> = self
            .tables
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.checkpoint()?)))
            .collect();
        json!({ "tables": tables })
    }

    /// Nothing to do: DynamoDB trims its streams after 24 hours.
    async fn release(&mut self, _checkpoint: &Value) -> Result<(), SourceError> {
        Ok(())
    }

    async fn lag(&mut self, checkpoint: Option<&Value>) -> Result<Vec<ShardLag>, SourceError> {
        let saved = match checkpoint {
            Some(checkpoint) => parse_checkpoint(checkpoint)
                .map_err(|e| SourceError::new("the DynamoDB change stream's checkpoint", e))?,
            None => BTreeMap::new(),
        };
        let mut lags = Vec::new();
        for table in &self.tables {
            let arn = match &table.stream_arn {
                Some(arn) => arn.clone(),
                None => latest_stream_arn(&self.dynamodb, &self.endpoint, &table.name).await?,
            };
            let saved = saved.get(&table.name).filter(|s| s.stream_arn == arn);
            for shard in list_shards(&self.streams, &self.endpoint, &table.name, &arn).await? {
                let done = saved.is_some_and(|s| s.done.contains(&shard.id));
                lags.push(ShardLag {
                    shard: format!("{}/{}", table.name, shard.id),
                    position: saved.and_then(|s| s.shards.get(&shard.id).cloned()),
                    behind: done.then_some(0),
                    state: if done {
                        "done"
                    } else if shard.closed {
                        "closed"
                    } else {
                        "open"
                    }
                    .to_string(),
                });
            }
        }
        Ok(lags)
    }
}

// ---------------------------------------------------------------------------
// The table scan

/// Pages through a feature table with Scan (`cdc backfill`). DynamoDB ends a
/// page at 1 MB, so a page may hold fewer than `limit` items and still have
/// a key to continue after.
#[derive(Debug)]
pub struct DynamoDbTableScan {
    dynamodb: aws_sdk_dynamodb::Client,
    endpoint: String,
    tables: Vec<(FeatureTable, String)>,
}

impl DynamoDbTableScan {
    /// Scans `aws.dynamodb.user_features_table` and `movie_features_table`.
    pub fn new(aws: &Aws) -> Self {
        Self {
            dynamodb: aws.dynamodb.clone(),
            endpoint: aws.endpoint(),
            tables: feature_tables(aws),
        }
    }
}

/// `{"user_id": "123"}` (a number's text, or a JSON number) as a DynamoDB
/// key of numbers.
fn start_key(
    after: &Value,
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let object = after.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        format!("a scan position must be like {{\"user_id\": \"123\"}}, not {after}")
    })?;
    object
        .iter()
        .map(|(name, value)| {
            let number = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                other => {
                    return Err(format!(
                        "a scan position's {name} must be a number's text, not {other}"
                    ));
                }
            };
            Ok((name.clone(), AttributeValue::N(number)))
        })
        .collect()
}

/// A DynamoDB key as `{"user_id": "123"}`.
fn key_json(key: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Value {
    let object: serde_json::Map<String, Value> = key
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(text(Some(value)))))
        .collect();
    Value::Object(object)
}

#[async_trait]
impl TableScan for DynamoDbTableScan {
    /// A `limit` of 0 reads one item (DynamoDB's smallest page).
    async fn page(
        &mut self,
        table: FeatureTable,
        after: Option<Value>,
        limit: usize,
    ) -> Result<(Vec<Change>, Option<Value>), SourceError> {
        let name = self
            .tables
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, name)| name.clone())
            .ok_or_else(|| {
                SourceError::new("DynamoDB scan", format!("no table for {}", table.name()))
            })?;
        let context = || format!("scanning DynamoDB table {name}");
        let start = match &after {
            Some(after) => Some(start_key(after).map_err(|e| SourceError::new(context(), e))?),
            None => None,
        };
        let out = self
            .dynamodb
            .scan()
            .table_name(&name)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                SourceError::new(
                    context(),
                    classify(e, &self.endpoint, "dynamodb:Scan", &name),
                )
            })?;
        let mut changes = Vec::with_capacity(out.items().len());
        for item in out.items() {
            match item_change(table, item) {
                Ok(change) => changes.push(change),
                Err(why) => tracing::warn!(table = %name, "an item skipped: {why}"),
            }
        }
        let next = out
            .last_evaluated_key()
            .filter(|key| !key.is_empty())
            .map(key_json);
        Ok((changes, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, StreamRecord};

    fn shard(id: &str, parent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(String::from),
            closed: false,
        }
    }

    fn done(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    // moto has one shard per table and never splits it: these tests are
    // where shard lineage is checked.

    #[test]
    fn a_split_is_read_after_its_parent() {
        let shards = [
            shard("p", None),
            shard("a", Some("p")),
            shard("b", Some("p")),
        ];
        assert_eq!(readable_shards(&shards, &done(&[])), ["p"]);
        assert_eq!(readable_shards(&shards, &done(&["p"])), ["a", "b"]);
    }

    #[test]
    fn done_shards_are_skipped() {
        let shards = [
            shard("p", None),
            shard("a", Some("p")),
            shard("b", Some("p")),
        ];
        assert_eq!(readable_shards(&shards, &done(&["p", "a"])), ["b"]);
        assert!(readable_shards(&shards, &done(&["p", "a", "b"])).is_empty());
    }

    #[test]
    fn a_parent_no_longer_listed_does_not_hold_back_its_children() {
        let shards = [shard("a", Some("trimmed")), shard("b", Some("trimmed"))];
        assert_eq!(readable_shards(&shards, &done(&[])), ["a", "b"]);
    }

    #[test]
    fn three_generations_are_read_one_after_the_other() {
        let shards = [
            shard("g", None),
            shard("p", Some("g")),
            shard("c", Some("p")),
            shard("other", None),
        ];
        assert_eq!(readable_shards(&shards, &done(&[])), ["g", "other"]);
        assert_eq!(readable_shards(&shards, &done(&["g"])), ["p", "other"]);
        assert_eq!(readable_shards(&shards, &done(&["g", "p"])), ["c", "other"]);
        // The grandparent trimmed: the parent is next, the child still waits.
        assert_eq!(readable_shards(&shards[1..3], &done(&[])), ["p"]);
    }

    #[test]
    fn a_listing_forgets_trimmed_shards() {
        let mut table = TableStream::new(FeatureTable::UserFeatures, "u".into());
        table.start("arn".into(), None);
        table.positions.insert("old".into(), "5".into());
        table.positions.insert("p".into(), "9".into());
        table.done.insert("old".into());
        table.apply_listing(vec![shard("p", Some("old")), shard("c", Some("p"))]);
        assert_eq!(table.positions.keys().collect::<Vec<_>>(), ["p"]);
        assert!(table.done.is_empty());
        assert_eq!(readable_shards(&table.shards, &table.done), ["p"]);
    }

    fn image(pairs: &[(&str, StreamValue)]) -> HashMap<String, StreamValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn n(text: &str) -> StreamValue {
        StreamValue::N(text.into())
    }

    fn s(text: &str) -> StreamValue {
        StreamValue::S(text.into())
    }

    fn record(
        event: OperationType,
        keys: HashMap<String, StreamValue>,
        new: Option<HashMap<String, StreamValue>>,
        old: Option<HashMap<String, StreamValue>>,
        size: Option<i64>,
    ) -> Record {
        let data = StreamRecord::builder()
            .set_keys(Some(keys))
            .set_new_image(new)
            .set_old_image(old)
            .sequence_number("100")
            .set_size_bytes(size)
            .build();
        Record::builder().event_name(event).dynamodb(data).build()
    }

    #[test]
    fn an_insert_upserts_the_new_image_as_text() {
        let new = image(&[
            ("user_id", n("42")),
            ("rating_count", n("3")),
            ("avg_rating", n("3.5")),
            ("std_dev", n("0.40824829046386")),
            ("last_update", s("2025-03-15T10:00:00Z")),
            ("version", n("7")),
            ("sum_half", n("21")),
        ]);
        let r = record(
            OperationType::Insert,
            image(&[("user_id", n("42"))]),
            Some(new),
            None,
            Some(321),
        );
        let change = record_change(FeatureTable::UserFeatures, &r).unwrap();
        assert_eq!(
            change,
            Change {
                table: FeatureTable::UserFeatures,
                key: "42".into(),
                op: Op::Upsert,
                version: "7".into(),
                values: vec![
                    "3".into(),
                    "3.5".into(),
                    "0.40824829046386".into(),
                    "2025-03-15T10:00:00Z".into()
                ],
                source_bytes: 321,
            }
        );
    }

    #[test]
    fn values_pass_through_unjudged_and_a_missing_version_is_zero() {
        let new = image(&[
            ("movie_id", n("9")),
            ("rating_count", s("many")),
            ("avg_rating", StreamValue::Bool(true)),
            ("std_dev", StreamValue::Null(true)),
            // last_update missing
        ]);
        let r = record(
            OperationType::Modify,
            image(&[("movie_id", n("9"))]),
            Some(new.clone()),
            Some(new.clone()),
            None,
        );
        let change = record_change(FeatureTable::MovieFeatures, &r).unwrap();
        assert_eq!(change.key, "9");
        assert_eq!(change.op, Op::Upsert);
        assert_eq!(change.version, "0");
        assert_eq!(change.values, ["many", "true", "", ""]);
        // No SizeBytes: the image's names and values.
        assert_eq!(change.source_bytes, image_size(&new));
        assert_eq!(
            change.source_bytes,
            "movie_id".len()
                + 1
                + "rating_count".len()
                + 4
                + "avg_rating".len()
                + 4
                + "std_dev".len()
                + 4
        );
    }

    #[test]
    fn a_remove_deletes_the_key_with_the_old_version() {
        let old = image(&[
            ("user_id", n("5")),
            ("rating_count", n("1")),
            ("version", n("12")),
        ]);
        let r = record(
            OperationType::Remove,
            image(&[("user_id", n("5"))]),
            None,
            Some(old),
            Some(99),
        );
        let change = record_change(FeatureTable::UserFeatures, &r).unwrap();
        assert_eq!(
            change,
            Change {
                table: FeatureTable::UserFeatures,
                key: "5".into(),
                op: Op::Delete,
                version: "12".into(),
                values: Vec::new(),
                source_bytes: 99,
            }
        );
        // Without an old image (a KEYS_ONLY view): version 0.
        let r = record(
            OperationType::Remove,
            image(&[("user_id", n("5"))]),
            None,
            None,
            None,
        );
        let change = record_change(FeatureTable::UserFeatures, &r).unwrap();
        assert_eq!((change.op, change.version.as_str()), (Op::Delete, "0"));
        assert_eq!(change.source_bytes, "user_id".len() + 1);
    }

    #[test]
    fn records_that_cannot_be_changes_say_why() {
        let r = record(
            OperationType::Insert,
            image(&[]),
            Some(image(&[])),
            None,
            None,
        );
        let why = record_change(FeatureTable::UserFeatures, &r).unwrap_err();
        assert!(why.contains("user_id"), "{why}");
        let r = record(
            OperationType::Modify,
            image(&[("user_id", n("1"))]),
            None,
            None,
            None,
        );
        let why = record_change(FeatureTable::UserFeatures, &r).unwrap_err();
        assert!(why.contains("NewImage"), "{why}");
    }

    #[test]
    fn other_types_render_compactly() {
        use aws_sdk_dynamodb::primitives::Blob;
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let map = V::M(HashMap::from([
            (
                "b".to_string(),
                V::L(vec![V::N("1.50".into()), V::S("x\"y".into())]),
            ),
            ("a".to_string(), V::Bool(false)),
            ("c".to_string(), V::Null(true)),
        ]));
        assert_eq!(
            text(Some(&map)),
            r#"{"a":false,"b":[1.50,"x\"y"],"c":null}"#
        );
        assert_eq!(text(Some(&V::Ns(vec!["1".into(), "2".into()]))), "[1,2]");
        assert_eq!(text(Some(&V::Ss(vec!["a".into()]))), r#"["a"]"#);
        assert_eq!(
            text(Some(&V::B(Blob::new(b"hi!?".to_vec())))),
            r#""aGkhPw==""#
        );
        assert_eq!(text(Some(&V::S(" as is ".into()))), " as is ");
        assert_eq!(text::<V>(None), "");
    }

    #[test]
    fn base64_matches_the_standard_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn a_scanned_item_upserts_with_its_version() {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let item: HashMap<String, V> = [
            ("movie_id", V::N("318".into())),
            ("rating_count", V::S("many".into())),
            ("avg_rating", V::N("4.5".into())),
            ("version", V::N("3".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let change = item_change(FeatureTable::MovieFeatures, &item).unwrap();
        assert_eq!(change.key, "318");
        assert_eq!(change.op, Op::Upsert);
        assert_eq!(change.version, "3");
        assert_eq!(change.values, ["many", "4.5", "", ""]);
        assert_eq!(change.source_bytes, image_size(&item));
        assert!(item_change(FeatureTable::UserFeatures, &item).is_err());
    }

    #[test]
    fn scan_positions_round_trip() {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let key = start_key(&json!({"user_id": "123"})).unwrap();
        assert_eq!(key.get("user_id"), Some(&V::N("123".into())));
        assert_eq!(key_json(&key), json!({"user_id": "123"}));
        assert_eq!(
            start_key(&json!({"user_id": 7})).unwrap().get("user_id"),
            Some(&V::N("7".into()))
        );
        assert!(start_key(&json!({})).is_err());
        assert!(start_key(&json!({"user_id": [1]})).is_err());
        assert!(start_key(&json!("123")).is_err());
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let mut table = TableStream::new(FeatureTable::MovieFeatures, "movies".into());
        assert_eq!(table.checkpoint(), None);
        table.start("arn:stream".into(), None);
        table.positions.insert("s1".into(), "100".into());
        table.positions.insert("s2".into(), "200".into());
        table.done.insert("s1".into());
        let checkpoint = json!({"tables": {"movies": table.checkpoint().unwrap()}});
        assert_eq!(
            checkpoint,
            json!({"tables": {"movies": {
                "stream_arn": "arn:stream",
                "shards": {"s1": "100", "s2": "200"},
                "done": ["s1"],
            }}})
        );
        let saved = parse_checkpoint(&checkpoint).unwrap();
        let movies = &saved["movies"];
        assert_eq!(movies.stream_arn, "arn:stream");
        assert_eq!(movies.shards, table.positions);
        assert_eq!(movies.done, table.done);

        let mut restored = TableStream::new(FeatureTable::MovieFeatures, "movies".into());
        restored.start("arn:stream".into(), Some(movies.clone()));
        assert_eq!(restored.checkpoint(), table.checkpoint());

        for bad in [
            json!({"log": 5}),
            json!({"tables": {"movies": {"shards": {}}}}),
            json!({"tables": {"movies": {"stream_arn": "a", "shards": {"s": 1}}}}),
            json!({"tables": {"movies": {"stream_arn": "a", "done": "s"}}}),
        ] {
            assert!(parse_checkpoint(&bad).is_err(), "{bad}");
        }
        assert!(parse_checkpoint(&json!({"tables": {}})).unwrap().is_empty());
    }
}
