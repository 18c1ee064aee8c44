//! The lake's silver and gold tables as Parquet (SPEC §3, §4): proper types
//! (INT64 ids, DOUBLE ratings, UTC millisecond timestamps, a DATE snapshot
//! column), snappy-compressed as Spark writes them by default.

use crate::{Aggregates, RatingRecord};
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use movierec_core::{FeatureAccumulator, Movie, TopN};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("{table}: column `{column}` is missing or not {expected}")]
    Column {
        table: &'static str,
        column: &'static str,
        expected: &'static str,
    },
}

pub type Result<T, E = TableError> = std::result::Result<T, E>;

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn write(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Result<Bytes> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// Every record batch of a Parquet file.
pub fn read_batches(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(64 * 1024)
        .build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// `silver/ratings/`: the latest rating of every (user, movie). Written a
/// million rows at a time, so the Arrow copy never holds all of them.
pub fn ratings_table(ratings: &[RatingRecord]) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("movie_id", DataType::Int64, false),
        Field::new("rating", DataType::Float64, false),
        Field::new("timestamp", utc_millis(), false),
    ]));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?;
    for chunk in ratings.chunks(1 << 20) {
        let mut users = Int64Builder::with_capacity(chunk.len());
        let mut movies = Int64Builder::with_capacity(chunk.len());
        let mut values = Float64Builder::with_capacity(chunk.len());
        let mut times =
            TimestampMillisecondBuilder::with_capacity(chunk.len()).with_timezone("UTC");
        for r in chunk {
            users.append_value(r.user as i64);
            movies.append_value(r.movie as i64);
            values.append_value(f64::from(r.half_stars) / 2.0);
            times.append_value(r.ts_ms);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(users.finish()),
            Arc::new(movies.finish()),
            Arc::new(values.finish()),
            Arc::new(times.finish()),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
    }
    Ok(Bytes::from(writer.into_inner()?))
}

/// `silver/ratings/` as several files encoded in parallel (one per core,
/// at least a million rows each), rows in order across them.
pub fn ratings_parts(ratings: &[RatingRecord]) -> Result<Vec<Bytes>> {
    use rayon::prelude::*;
    if ratings.is_empty() {
        return Ok(vec![ratings_table(ratings)?]);
    }
    let parts = rayon::current_num_threads()
        .min(ratings.len() / (1 << 20))
        .max(1);
    ratings
        .par_chunks(ratings.len().div_ceil(parts).max(1))
        .map(ratings_table)
        .collect()
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    table: &'static str,
    name: &'static str,
    expected: &'static str,
) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or(TableError::Column {
            table,
            column: name,
            expected,
        })
}

/// Reads `silver/ratings/` back; `seq` numbers rows in file order.
pub fn read_ratings(bytes: Bytes, first_seq: u64) -> Result<Vec<RatingRecord>> {
    use arrow_array::{Float64Array, Int64Array, TimestampMillisecondArray};
    let mut out = Vec::new();
    let mut seq = first_seq;
    for batch in read_batches(bytes)? {
        let t = "silver/ratings";
        let users: &Int64Array = column(&batch, t, "user_id", "INT64")?;
        let movies: &Int64Array = column(&batch, t, "movie_id", "INT64")?;
        let values: &Float64Array = column(&batch, t, "rating", "DOUBLE")?;
        let times: &TimestampMillisecondArray = column(&batch, t, "timestamp", "TIMESTAMP(ms)")?;
        for i in 0..batch.num_rows() {
            out.push(RatingRecord {
                user: users.value(i) as u64,
                movie: movies.value(i) as u64,
                ts_ms: times.value(i),
                half_stars: (values.value(i) * 2.0).round() as u8,
                seq,
            });
            seq += 1;
        }
    }
    Ok(out)
}

/// `silver/user-features/` or `silver/movie-features/`: SPEC §3's columns and
/// the snapshot date (days since 1970-01-01).
pub fn features_table(
    key: &str,
    rows: &[(u64, FeatureAccumulator)],
    snapshot_days: i32,
) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(key, DataType::Int64, false),
        Field::new("avg_rating", DataType::Float64, false),
        Field::new("rating_count", DataType::Int64, false),
        Field::new("std_dev", DataType::Float64, false),
        Field::new("last_update", utc_millis(), false),
        Field::new("snapshot_date", DataType::Date32, false),
    ]));
    let n = rows.len();
    let mut ids = Int64Builder::with_capacity(n);
    let mut avg = Float64Builder::with_capacity(n);
    let mut count = Int64Builder::with_capacity(n);
    let mut std = Float64Builder::with_capacity(n);
    let mut last = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut snapshot = Date32Builder::with_capacity(n);
    for (id, acc) in rows {
        ids.append_value(*id as i64);
        avg.append_value(acc.mean());
        count.append_value(acc.count as i64);
        std.append_value(acc.std_dev());
        last.append_value(acc.last_update_ms);
        snapshot.append_value(snapshot_days);
    }
    write(
        schema,
        vec![
            Arc::new(ids.finish()),
            Arc::new(avg.finish()),
            Arc::new(count.finish()),
            Arc::new(std.finish()),
            Arc::new(last.finish()),
            Arc::new(snapshot.finish()),
        ],
    )
}

/// `gold/top-movies/`: the Bayesian top-N with the catalogue's title, genres
/// and year, ranked from 1.
pub fn top_movies_table(
    top: &TopN,
    catalogue: &HashMap<u64, Movie>,
    snapshot_days: i32,
) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("rank", DataType::Int32, false),
        Field::new("movie_id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("genres", DataType::Utf8, true),
        Field::new("year", DataType::Int32, true),
        Field::new("avg_rating", DataType::Float64, false),
        Field::new("rating_count", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("global_mean", DataType::Float64, false),
        Field::new("snapshot_date", DataType::Date32, false),
    ]));
    let n = top.movies.len();
    let mut rank = Int32Builder::with_capacity(n);
    let mut ids = Int64Builder::with_capacity(n);
    let mut titles = StringBuilder::new();
    let mut genres = StringBuilder::new();
    let mut years = Int32Builder::with_capacity(n);
    let mut avg = Float64Builder::with_capacity(n);
    let mut count = Int64Builder::with_capacity(n);
    let mut score = Float64Builder::with_capacity(n);
    let mut global = Float64Builder::with_capacity(n);
    let mut snapshot = Date32Builder::with_capacity(n);
    for (i, scored) in top.movies.iter().enumerate() {
        let movie = catalogue.get(&scored.movie_id);
        rank.append_value(i as i32 + 1);
        ids.append_value(scored.movie_id as i64);
        titles.append_option(movie.map(|m| m.title.as_str()));
        genres.append_option(movie.map(|m| m.genres.join("|")));
        years.append_option(movie.and_then(|m| m.year));
        avg.append_value(scored.avg_rating);
        count.append_value(scored.rating_count as i64);
        score.append_value(scored.score);
        global.append_value(top.global_mean);
        snapshot.append_value(snapshot_days);
    }
    write(
        schema,
        vec![
            Arc::new(rank.finish()),
            Arc::new(ids.finish()),
            Arc::new(titles.finish()),
            Arc::new(genres.finish()),
            Arc::new(years.finish()),
            Arc::new(avg.finish()),
            Arc::new(count.finish()),
            Arc::new(score.finish()),
            Arc::new(global.finish()),
            Arc::new(snapshot.finish()),
        ],
    )
}

/// The catalogue, for engines that join titles themselves (Spark).
pub fn catalogue_table(movies: &[Movie]) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("movie_id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("genres", DataType::Utf8, true),
        Field::new("year", DataType::Int32, true),
    ]));
    let mut ids = Int64Builder::with_capacity(movies.len());
    let mut titles = StringBuilder::new();
    let mut genres = StringBuilder::new();
    let mut years = Int32Builder::with_capacity(movies.len());
    for m in movies {
        ids.append_value(m.movie_id as i64);
        titles.append_value(&m.title);
        genres.append_value(m.genres.join("|"));
        years.append_option(m.year);
    }
    write(
        schema,
        vec![
            Arc::new(ids.finish()),
            Arc::new(titles.finish()),
            Arc::new(genres.finish()),
            Arc::new(years.finish()),
        ],
    )
}

/// The catalogue dataset (`silver/movies`, written by an import into a lake)
/// read back.
pub fn read_catalogue(bytes: Bytes) -> Result<Vec<Movie>> {
    use arrow_array::{Int32Array, Int64Array, StringArray};
    let t = "silver/movies";
    let mut out = Vec::new();
    for batch in read_batches(bytes)? {
        let ids: &Int64Array = column(&batch, t, "movie_id", "INT64")?;
        let titles: &StringArray = column(&batch, t, "title", "STRING")?;
        let genres: &StringArray = column(&batch, t, "genres", "STRING")?;
        let years: &Int32Array = column(&batch, t, "year", "INT32")?;
        for i in 0..batch.num_rows() {
            out.push(Movie {
                movie_id: ids.value(i) as u64,
                title: titles.value(i).to_string(),
                genres: movierec_core::parse_genres(genres.value(i)),
                year: (!years.is_null(i)).then(|| years.value(i)),
            });
        }
    }
    Ok(out)
}

/// A features table read back (from either engine) as accumulators: the
/// integer sums are recovered from the mean and the sample deviation, which
/// is exact for any realistic count (ratings are half stars).
pub fn read_features(bytes: Bytes, key: &'static str) -> Result<Vec<(u64, FeatureAccumulator)>> {
    use arrow_array::{Float64Array, Int64Array, TimestampMillisecondArray};
    let t = "features";
    let mut out = Vec::new();
    for batch in read_batches(bytes)? {
        let ids: &Int64Array = column(&batch, t, key, "INT64")?;
        let avg: &Float64Array = column(&batch, t, "avg_rating", "DOUBLE")?;
        let count: &Int64Array = column(&batch, t, "rating_count", "INT64")?;
        let std: &Float64Array = column(&batch, t, "std_dev", "DOUBLE")?;
        let last: &TimestampMillisecondArray = column(&batch, t, "last_update", "TIMESTAMP(ms)")?;
        for i in 0..batch.num_rows() {
            let n = count.value(i) as f64;
            let sum_half = (avg.value(i) * 2.0 * n).round();
            let sum_sq =
                ((4.0 * n * (n - 1.0) * std.value(i).powi(2) + sum_half * sum_half) / n).round();
            out.push((
                ids.value(i) as u64,
                FeatureAccumulator {
                    count: count.value(i) as u64,
                    sum_half: sum_half as u64,
                    sum_sq_quarter: sum_sq as u64,
                    last_update_ms: last.value(i),
                },
            ));
        }
    }
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// `gold/top-movies/` read back, in rank order, with C.
pub fn read_top(bytes: Bytes) -> Result<(Vec<movierec_core::ScoredMovie>, f64)> {
    use arrow_array::{Float64Array, Int32Array, Int64Array};
    let t = "gold/top-movies";
    let mut rows = Vec::new();
    let mut global_mean = 0.0;
    for batch in read_batches(bytes)? {
        let rank: &Int32Array = column(&batch, t, "rank", "INT32")?;
        let ids: &Int64Array = column(&batch, t, "movie_id", "INT64")?;
        let avg: &Float64Array = column(&batch, t, "avg_rating", "DOUBLE")?;
        let count: &Int64Array = column(&batch, t, "rating_count", "INT64")?;
        let score: &Float64Array = column(&batch, t, "score", "DOUBLE")?;
        let global: &Float64Array = column(&batch, t, "global_mean", "DOUBLE")?;
        for i in 0..batch.num_rows() {
            global_mean = global.value(i);
            rows.push((
                rank.value(i),
                movierec_core::ScoredMovie {
                    movie_id: ids.value(i) as u64,
                    score: score.value(i),
                    avg_rating: avg.value(i),
                    rating_count: count.value(i) as u64,
                },
            ));
        }
    }
    rows.sort_by_key(|(rank, _)| *rank);
    Ok((rows.into_iter().map(|(_, m)| m).collect(), global_mean))
}

/// The latest rating of each (user, movie), sorted by user then movie:
/// the latest time wins, equal times go to the higher `seq`.
pub fn latest_ratings(mut records: Vec<RatingRecord>) -> (Vec<RatingRecord>, u64) {
    use rayon::slice::ParallelSliceMut;
    use std::cmp::Reverse;
    // Newest first within each pair, so the first of each run is kept: in
    // place, without a second copy of the records.
    records.par_sort_unstable_by_key(|r| (r.user, r.movie, Reverse(r.ts_ms), Reverse(r.seq)));
    let before = records.len() as u64;
    records.dedup_by(|later, kept| later.user == kept.user && later.movie == kept.movie);
    let superseded = before - records.len() as u64;
    (records, superseded)
}

/// Aggregates ratings already reduced by [`latest_ratings`].
pub fn aggregate_latest(ratings: &[RatingRecord]) -> Aggregates {
    crate::aggregate_grouped(ratings.iter().copied()).expect("latest_ratings sorts by user")
}

/// One bronze object's events in stream order (`seq` left at 0): JSON lines,
/// or Parquet written by `lake compact --format parquet`. Lines that are not
/// rating events are skipped and counted, and the first few are logged.
pub fn decode_bronze(key: &str, bytes: &Bytes) -> Result<(Vec<RatingRecord>, u64)> {
    if key.ends_with(".parquet") {
        return Ok((read_ratings(bytes.clone(), 0)?, 0));
    }
    let mut records = Vec::with_capacity(bytes.len() / 80);
    let mut bad_lines = 0u64;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match movierec_core::RatingEvent::from_json(line) {
            Ok(event) => records.push(RatingRecord {
                user: event.user_id,
                movie: event.movie_id,
                ts_ms: event.timestamp.millis(),
                half_stars: event.rating.half_stars(),
                seq: 0,
            }),
            Err(error) => {
                bad_lines += 1;
                if bad_lines <= 3 {
                    tracing::warn!("{key}: skipped a line that is not a rating event: {error}");
                }
            }
        }
    }
    Ok((records, bad_lines))
}

/// [`decode_bronze`] over many objects on all cores, results in input order.
pub fn decode_bronze_all(objects: &[(String, Bytes)]) -> Vec<Result<(Vec<RatingRecord>, u64)>> {
    use rayon::prelude::*;
    objects
        .par_iter()
        .map(|(key, bytes)| decode_bronze(key, bytes))
        .collect()
}

/// Bronze JSON lines (rating events, in stream order) as one Parquet file
/// with the silver ratings' schema, rows in the same order. A line that is
/// not a rating event is an error naming its file and line: compaction
/// must not drop anything.
pub fn bronze_json_to_parquet(inputs: &[(String, Bytes)]) -> std::result::Result<Bytes, String> {
    let mut records = Vec::new();
    for (key, bytes) in inputs {
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = movierec_core::RatingEvent::from_json(line)
                .map_err(|e| format!("{key} line {}: not a rating event: {e}", n + 1))?;
            records.push(RatingRecord {
                user: event.user_id,
                movie: event.movie_id,
                ts_ms: event.timestamp.millis(),
                half_stars: event.rating.half_stars(),
                seq: records.len() as u64,
            });
        }
    }
    ratings_table(&records).map_err(|e| e.to_string())
}

/// Parquet files with one schema as one file, rows in input order.
pub fn concat_parquet(inputs: &[(String, Bytes)]) -> std::result::Result<Bytes, String> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer: Option<(Arc<Schema>, ArrowWriter<Vec<u8>>)> = None;
    for (key, bytes) in inputs {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(|e| format!("{key}: {e}"))?;
        let schema = reader.schema().clone();
        let (first, w) = match &mut writer {
            Some(open) => open,
            None => {
                let w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone()))
                    .map_err(|e| e.to_string())?;
                writer.insert((schema.clone(), w))
            }
        };
        if schema != *first {
            return Err(format!(
                "{key} has another schema than {}: {schema} vs {first}",
                inputs[0].0
            ));
        }
        let reader = reader
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| format!("{key}: {e}"))?;
        for batch in reader {
            let batch = batch.map_err(|e| format!("{key}: {e}"))?;
            w.write(&batch).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    let (_, w) = writer.ok_or("nothing to merge")?;
    Ok(Bytes::from(w.into_inner().map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn rec(user: u64, movie: u64, ts_ms: i64, half_stars: u8, seq: u64) -> RatingRecord {
        RatingRecord {
            user,
            movie,
            ts_ms,
            half_stars,
            seq,
        }
    }

    #[test]
    fn bronze_lines_become_parquet_in_order_and_parquet_files_merge() {
        let line = |u: u64, r: f64, t: &str| {
            format!(r#"{{"user_id": {u}, "movie_id": 7, "rating": {r}, "timestamp": "{t}"}}"#)
        };
        let a = format!(
            "{}\n{}\n",
            line(1, 4.5, "2025-01-01T00:00:00Z"),
            line(2, 3.0, "2025-01-01T00:00:01Z")
        );
        let b = line(3, 0.5, "2025-01-01T00:00:02Z"); // no final newline
        let one =
            bronze_json_to_parquet(&[("a.json".into(), a.into()), ("b.json".into(), b.into())])
                .unwrap();
        let rows = read_ratings(one.clone(), 0).unwrap();
        let users: Vec<u64> = rows.iter().map(|r| r.user).collect();
        assert_eq!(users, [1, 2, 3]);
        assert_eq!(rows[2].half_stars, 1);
        assert_eq!(rows[1].ts_ms, 1_735_689_601_000);

        let merged = concat_parquet(&[("x".into(), one.clone()), ("y".into(), one)]).unwrap();
        let users: Vec<u64> = read_ratings(merged, 0)
            .unwrap()
            .iter()
            .map(|r| r.user)
            .collect();
        assert_eq!(users, [1, 2, 3, 1, 2, 3]);

        // Nothing is dropped: a bad line or another schema is an error by name.
        let bad = bronze_json_to_parquet(&[("d/p1.json".into(), "{\"user_id\": 1}\n".into())])
            .unwrap_err();
        assert!(bad.contains("d/p1.json line 1"), "{bad}");
        let none = TopN {
            global_mean: 0.0,
            eligible: 0,
            movies: Vec::new(),
        };
        let other = top_movies_table(&none, &HashMap::new(), 0).unwrap();
        let ratings = ratings_table(&[rec(1, 1, 1, 1, 0)]).unwrap();
        let error = concat_parquet(&[("r".into(), ratings), ("t".into(), other)]).unwrap_err();
        assert!(error.contains("t has another schema than r"), "{error}");
    }

    #[test]
    fn ratings_round_trip_and_the_latest_wins() {
        let (latest, superseded) = latest_ratings(vec![
            rec(2, 1, 50, 4, 0),
            rec(1, 1, 100, 2, 1),
            rec(1, 1, 100, 9, 2), // same time, later: wins
            rec(1, 1, 90, 10, 3), // older
        ]);
        assert_eq!(superseded, 2);
        assert_eq!(latest, vec![rec(1, 1, 100, 9, 2), rec(2, 1, 50, 4, 0)]);
        let back = read_ratings(ratings_table(&latest).unwrap(), 2).unwrap();
        assert_eq!(back, vec![rec(1, 1, 100, 9, 2), rec(2, 1, 50, 4, 3)]);
    }

    #[test]
    fn features_have_the_spec_columns_and_types() {
        let mut acc = FeatureAccumulator::default();
        acc.add_half_stars(8, 1_000);
        acc.add_half_stars(6, 2_000);
        let bytes = features_table("user_id", &[(7, acc)], 20_000).unwrap();
        let batches = read_batches(bytes).unwrap();
        let schema = batches[0].schema();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "user_id",
                "avg_rating",
                "rating_count",
                "std_dev",
                "last_update",
                "snapshot_date"
            ]
        );
        assert_eq!(schema.field(4).data_type(), &utc_millis());
        assert_eq!(schema.field(5).data_type(), &DataType::Date32);
        let ids = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 7);
    }
}

/// Ranked lists by key: `(key, [(item, score), …])`, best first.
pub type RankedLists = Vec<(u64, Vec<(u64, f64)>)>;

/// `gold/user-recommendations/` (`user_id`, `rank`, `movie_id`, `score`) or
/// `gold/similar-movies/` (`movie_id`, `rank`, `similar_movie_id`, `score`):
/// one row per list entry, ranked from 1.
pub fn ranked_lists_table(
    key: &str,
    other: &str,
    lists: &[(u64, Vec<(u64, f64)>)],
) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(key, DataType::Int64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new(other, DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
    ]));
    let n: usize = lists.iter().map(|(_, l)| l.len()).sum();
    let mut keys = Int64Builder::with_capacity(n);
    let mut ranks = Int32Builder::with_capacity(n);
    let mut others = Int64Builder::with_capacity(n);
    let mut scores = Float64Builder::with_capacity(n);
    for (id, list) in lists {
        for (position, &(item, score)) in list.iter().enumerate() {
            keys.append_value(*id as i64);
            ranks.append_value(position as i32 + 1);
            others.append_value(item as i64);
            scores.append_value(score);
        }
    }
    write(
        schema,
        vec![
            Arc::new(keys.finish()),
            Arc::new(ranks.finish()),
            Arc::new(others.finish()),
            Arc::new(scores.finish()),
        ],
    )
}

/// Reads [`ranked_lists_table`] back: lists in key order, entries by rank.
pub fn read_ranked_lists(
    bytes: Bytes,
    key: &'static str,
    other: &'static str,
) -> Result<RankedLists> {
    use arrow_array::{Float64Array, Int32Array, Int64Array};
    let t = "ranked list";
    let mut rows = Vec::new();
    for batch in read_batches(bytes)? {
        let keys: &Int64Array = column(&batch, t, key, "INT64")?;
        let ranks: &Int32Array = column(&batch, t, "rank", "INT32")?;
        let others: &Int64Array = column(&batch, t, other, "INT64")?;
        let scores: &Float64Array = column(&batch, t, "score", "DOUBLE")?;
        for i in 0..batch.num_rows() {
            rows.push((
                keys.value(i) as u64,
                ranks.value(i),
                others.value(i) as u64,
                scores.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let mut out: Vec<(u64, Vec<(u64, f64)>)> = Vec::new();
    for (id, _, item, score) in rows {
        match out.last_mut() {
            Some((last, list)) if *last == id => list.push((item, score)),
            _ => out.push((id, vec![(item, score)])),
        }
    }
    Ok(out)
}

/// A model's factors: (`sample`, `id`, `factors`) with one row per id and
/// posterior sample (sample 0 only for point estimates), factors as a list
/// of doubles (the layout of Spark MLlib's `userFactors`/`itemFactors`,
/// plus the sample).
pub fn factors_table(ids: &[u64], width: usize, factors: &[f64]) -> Result<Bytes> {
    use arrow_array::builder::ListBuilder;
    assert!(width > 0 && factors.len().is_multiple_of(ids.len().max(1) * width));
    let samples = if ids.is_empty() {
        0
    } else {
        factors.len() / (ids.len() * width)
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("sample", DataType::Int32, false),
        Field::new("id", DataType::Int64, false),
        Field::new(
            "factors",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            false,
        ),
    ]));
    let n = ids.len() * samples;
    let mut sample_col = Int32Builder::with_capacity(n);
    let mut id_col = Int64Builder::with_capacity(n);
    let mut list = ListBuilder::with_capacity(Float64Builder::with_capacity(n * width), n);
    for (row, vector) in factors.chunks_exact(width).enumerate() {
        sample_col.append_value((row / ids.len()) as i32);
        id_col.append_value(ids[row % ids.len()] as i64);
        list.values().append_slice(vector);
        list.append(true);
    }
    write(
        schema,
        vec![
            Arc::new(sample_col.finish()),
            Arc::new(id_col.finish()),
            Arc::new(list.finish()),
        ],
    )
}

/// Reads [`factors_table`] back: ids of sample 0 in file order, and all
/// factors in file order (samples concatenated), with their width.
pub fn read_factors(bytes: Bytes) -> Result<(Vec<u64>, Vec<f64>, usize)> {
    use arrow_array::{Float64Array, Int32Array, Int64Array, ListArray};
    let t = "model factors";
    let (mut ids, mut factors, mut width) = (Vec::new(), Vec::new(), 0);
    for batch in read_batches(bytes)? {
        let samples: &Int32Array = column(&batch, t, "sample", "INT32")?;
        let id_col: &Int64Array = column(&batch, t, "id", "INT64")?;
        let lists: &ListArray = column(&batch, t, "factors", "LIST<DOUBLE>")?;
        for i in 0..batch.num_rows() {
            if samples.value(i) == 0 {
                ids.push(id_col.value(i) as u64);
            }
            let values = lists.value(i);
            let values =
                values
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or(TableError::Column {
                        table: t,
                        column: "factors",
                        expected: "LIST<DOUBLE>",
                    })?;
            width = values.len();
            factors.extend(values.values().iter().copied());
        }
    }
    Ok((ids, factors, width))
}

/// Two INT64 columns, e.g. (`user_id`, `fingerprint`); u64 values keep their bits.
pub fn pairs_table(key: &str, value: &str, pairs: &[(u64, u64)]) -> Result<Bytes> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(key, DataType::Int64, false),
        Field::new(value, DataType::Int64, false),
    ]));
    let mut keys = Int64Builder::with_capacity(pairs.len());
    let mut values = Int64Builder::with_capacity(pairs.len());
    for &(k, v) in pairs {
        keys.append_value(k as i64);
        values.append_value(v as i64);
    }
    write(
        schema,
        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
    )
}

/// Reads [`pairs_table`] back, in file order.
pub fn read_pairs(bytes: Bytes, key: &'static str, value: &'static str) -> Result<Vec<(u64, u64)>> {
    use arrow_array::Int64Array;
    let t = "pairs";
    let mut out = Vec::new();
    for batch in read_batches(bytes)? {
        let keys: &Int64Array = column(&batch, t, key, "INT64")?;
        let values: &Int64Array = column(&batch, t, value, "INT64")?;
        for i in 0..batch.num_rows() {
            out.push((keys.value(i) as u64, values.value(i) as u64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod model_table_tests {
    use super::*;

    #[test]
    fn lists_and_factors_round_trip() {
        let lists = vec![(7u64, vec![(3u64, 0.9), (1, 0.5)]), (9, vec![(2, 0.1)])];
        let bytes = ranked_lists_table("user_id", "movie_id", &lists).unwrap();
        assert_eq!(
            read_ranked_lists(bytes, "user_id", "movie_id").unwrap(),
            lists
        );
        // Two samples of three ids, width 2.
        let ids = [10u64, 20, 30];
        let factors: Vec<f64> = (0..12).map(f64::from).collect();
        let bytes = factors_table(&ids, 2, &factors).unwrap();
        let (read_ids, read, width) = read_factors(bytes).unwrap();
        assert_eq!((read_ids, read, width), (ids.to_vec(), factors, 2));
        let pairs = vec![(1u64, u64::MAX), (2, 0), (3, 1 << 63)];
        let bytes = pairs_table("user_id", "fingerprint", &pairs).unwrap();
        assert_eq!(read_pairs(bytes, "user_id", "fingerprint").unwrap(), pairs);
    }
}
