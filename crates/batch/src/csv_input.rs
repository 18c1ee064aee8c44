//! MovieLens-format `ratings.csv` (`userId,movieId,rating,timestamp`) read in
//! parallel chunks straight from a memory map.

use crate::BatchError;
use crate::aggregate::{Aggregates, GroupedAggregator, RatingRecord, aggregate_records};
use memmap2::Mmap;
use movierec_core::{EventTime, Rating};
use rayon::prelude::*;
use std::fs::File;
use std::path::Path;

/// Progress is reported about this often, per chunk.
const PROGRESS_BYTES: usize = 8 << 20;

/// Aggregates a ratings CSV. A header line is skipped when present.
/// `on_progress` receives byte increments from any thread.
pub fn aggregate_csv(
    path: &Path,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<Aggregates, BatchError> {
    let io = |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(Aggregates::default());
    }
    // SAFETY: the map is read-only and lives only for this call; movierec never
    // writes ratings files it is reading, and a file truncated under us by
    // another process is outside what any reader can defend against.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let data: &[u8] = &map;
    let body = header_len(data);
    let chunks = split_at_lines(data, body, rayon::current_num_threads() * 4);

    let results: Vec<Result<ChunkResult, ParseFailure>> = chunks
        .par_iter()
        .map(|&(start, end)| aggregate_chunk(data, start, end, on_progress))
        .collect();
    let mut parts = Vec::with_capacity(results.len());
    for result in results {
        parts.push(result.map_err(|failure| failure.into_error(path, data))?);
    }

    // A user cut by a chunk boundary has its ratings in two neighbouring edges.
    let mut merged = GroupedAggregator::new();
    let mut pending: Vec<RatingRecord> = Vec::new();
    let mut edges = Vec::new();
    for part in &mut parts {
        edges.push(std::mem::take(&mut part.first_run));
        edges.push(std::mem::take(&mut part.last_run));
    }
    for run in edges.into_iter().filter(|run| !run.is_empty()) {
        if pending.first().is_some_and(|r| r.user != run[0].user) {
            merged.push_run(&pending);
            pending.clear();
        }
        pending.extend(run);
    }
    merged.push_run(&pending);
    for part in parts {
        merged.absorb(part.middle);
    }
    match merged.finish() {
        Ok(aggregates) => Ok(aggregates),
        Err(_) => {
            tracing::info!(
                "{} is not grouped by user; sorting it (slower, more memory)",
                path.display()
            );
            let records: Vec<RatingRecord> = chunks
                .par_iter()
                .map(|&(start, end)| parse_chunk(data, start, end))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|failure| failure.into_error(path, data))?
                .into_iter()
                .flatten()
                .collect();
            Ok(aggregate_records(records))
        }
    }
}

struct ChunkResult {
    /// The chunk's first user run and last user run: they may continue in the
    /// neighbouring chunks, so they are folded after stitching.
    first_run: Vec<RatingRecord>,
    last_run: Vec<RatingRecord>,
    middle: GroupedAggregator,
}

struct ParseFailure {
    offset: usize,
    reason: String,
}

impl ParseFailure {
    fn into_error(self, path: &Path, data: &[u8]) -> BatchError {
        let line = memchr::memchr_iter(b'\n', &data[..self.offset]).count() as u64 + 1;
        BatchError::Malformed {
            path: path.to_path_buf(),
            line,
            reason: self.reason,
        }
    }
}

fn aggregate_chunk(
    data: &[u8],
    start: usize,
    end: usize,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<ChunkResult, ParseFailure> {
    let mut first_run: Vec<RatingRecord> = Vec::new();
    let mut in_first_run = true;
    let mut middle = GroupedAggregator::new();
    let mut reported = start;
    for_each_record(
        data,
        start,
        end,
        |record| {
            if in_first_run {
                if first_run.first().is_none_or(|r| r.user == record.user) {
                    first_run.push(record);
                    return;
                }
                in_first_run = false;
            }
            middle.push(record);
        },
        |offset| {
            if offset - reported >= PROGRESS_BYTES {
                on_progress((offset - reported) as u64);
                reported = offset;
            }
        },
    )?;
    on_progress((end - reported) as u64);
    let last_run = middle.take_run();
    Ok(ChunkResult {
        first_run,
        last_run,
        middle,
    })
}

fn parse_chunk(data: &[u8], start: usize, end: usize) -> Result<Vec<RatingRecord>, ParseFailure> {
    let mut records = Vec::new();
    for_each_record(data, start, end, |record| records.push(record), |_| {})?;
    Ok(records)
}

fn for_each_record(
    data: &[u8],
    start: usize,
    end: usize,
    mut on_record: impl FnMut(RatingRecord),
    mut on_offset: impl FnMut(usize),
) -> Result<(), ParseFailure> {
    let mut line_start = start;
    while line_start < end {
        let line_end =
            memchr::memchr(b'\n', &data[line_start..end]).map_or(end, |i| line_start + i);
        let mut line = &data[line_start..line_end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if !line.is_empty() {
            let record = parse_line(line, line_start as u64).map_err(|reason| ParseFailure {
                offset: line_start,
                reason,
            })?;
            on_record(record);
        }
        line_start = line_end + 1;
        on_offset(line_start.min(end));
    }
    Ok(())
}

/// Skips a header line (one that does not start with a digit).
fn header_len(data: &[u8]) -> usize {
    if data.first().is_some_and(u8::is_ascii_digit) {
        0
    } else {
        memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1)
    }
}

/// Splits `data[start..]` into about `parts` ranges that end at line ends.
fn split_at_lines(data: &[u8], start: usize, parts: usize) -> Vec<(usize, usize)> {
    let size = (data.len() - start).div_ceil(parts.max(1)).max(1);
    let mut ranges = Vec::with_capacity(parts);
    let mut begin = start;
    while begin < data.len() {
        let target = (begin + size).min(data.len());
        let end = memchr::memchr(b'\n', &data[target..]).map_or(data.len(), |i| target + i + 1);
        ranges.push((begin, end));
        begin = end;
    }
    ranges
}

#[inline]
fn parse_line(line: &[u8], seq: u64) -> Result<RatingRecord, String> {
    let mut fields = line.split(|&b| b == b',');
    let mut next = |name: &str| {
        fields.next().ok_or_else(|| {
            format!("expected 4 fields userId,movieId,rating,timestamp; `{name}` is missing")
        })
    };
    let user = parse_id(next("userId")?, "userId")?;
    let movie = parse_id(next("movieId")?, "movieId")?;
    let half_stars = parse_half_stars(next("rating")?)?;
    let ts_field = next("timestamp")?;
    if fields.next().is_some() {
        return Err("expected 4 fields userId,movieId,rating,timestamp; found more".into());
    }
    let ts_ms = parse_timestamp(ts_field)?;
    Ok(RatingRecord {
        user,
        movie,
        ts_ms,
        half_stars,
        seq,
    })
}

#[inline]
fn parse_digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    let mut value = 0u64;
    for &b in field {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + digit as u64;
    }
    Some(value)
}

#[inline]
fn parse_id(field: &[u8], name: &str) -> Result<u64, String> {
    match parse_digits(field) {
        Some(id) if id > 0 && id <= i64::MAX as u64 => Ok(id),
        _ => Err(format!(
            "`{name}` must be a positive integer, found `{}`",
            String::from_utf8_lossy(field)
        )),
    }
}

#[inline]
fn parse_half_stars(field: &[u8]) -> Result<u8, String> {
    let (whole, fraction) = match memchr::memchr(b'.', field) {
        Some(dot) => (&field[..dot], &field[dot + 1..]),
        None => (field, &b""[..]),
    };
    let half = match (parse_digits(whole), fraction) {
        (Some(w), []) => Some(w * 2),
        (Some(w), [f, rest @ ..]) if rest.iter().all(|&b| b == b'0') => match f {
            b'0' => Some(w * 2),
            b'5' => Some(w * 2 + 1),
            _ => None,
        },
        _ => None,
    };
    match half {
        Some(h @ 1..=10) => Ok(h as u8),
        _ => {
            let text = String::from_utf8_lossy(field);
            Err(Rating::parse(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("rating `{text}` is not valid")))
        }
    }
}

#[inline]
fn parse_timestamp(field: &[u8]) -> Result<i64, String> {
    if let Some(seconds) = parse_digits(field)
        && let Ok(time) = EventTime::from_epoch_seconds(seconds as i64)
    {
        return Ok(time.millis());
    }
    let text = std::str::from_utf8(field).map_err(|_| "timestamp is not UTF-8".to_string())?;
    EventTime::parse(text)
        .map(EventTime::millis)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_movielens_lines() {
        let r = parse_line(b"1,31,2.5,1260759144", 7).unwrap();
        assert_eq!(
            (r.user, r.movie, r.half_stars, r.ts_ms, r.seq),
            (1, 31, 5, 1_260_759_144_000, 7)
        );
        assert_eq!(parse_line(b"1,31,4,1", 0).unwrap().half_stars, 8);
        assert_eq!(parse_line(b"1,31,4.50,1", 0).unwrap().half_stars, 9);
        assert_eq!(
            parse_line(b"1,31,4.0,2025-03-15T10:30:00Z", 0)
                .unwrap()
                .ts_ms,
            EventTime::parse("2025-03-15T10:30:00").unwrap().millis()
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(
            parse_line(b"1,31,4.2,1", 0)
                .unwrap_err()
                .contains("multiple of 0.5")
        );
        assert!(
            parse_line(b"1,31,0,1", 0)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_line(b"0,31,4,1", 0).unwrap_err().contains("userId"));
        assert!(parse_line(b"1,x,4,1", 0).unwrap_err().contains("movieId"));
        assert!(parse_line(b"1,31,4", 0).unwrap_err().contains("timestamp"));
        assert!(
            parse_line(b"1,31,4,1,9", 0)
                .unwrap_err()
                .contains("found more")
        );
        assert!(
            parse_line(b"1,31,4,later", 0)
                .unwrap_err()
                .contains("ISO-8601")
        );
    }

    #[test]
    fn chunks_cover_the_body_at_line_ends() {
        let data = b"h\n1,1,1,1\n2,2,2,2\n3,3,3,3";
        let start = header_len(data);
        assert_eq!(start, 2);
        for parts in 1..6 {
            let ranges = split_at_lines(data, start, parts);
            assert_eq!(ranges.first().unwrap().0, start);
            assert_eq!(ranges.last().unwrap().1, data.len());
            for w in ranges.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert_eq!(data[w[0].1 - 1], b'\n');
            }
        }
    }
}
