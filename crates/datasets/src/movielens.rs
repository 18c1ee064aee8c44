//! Streaming readers for every MovieLens layout GroupLens has published.
//!
//! Ratings are streamed line by line (ml-32m has 32 million of them), so
//! memory stays flat whatever the size; rows come out in file order and the
//! caller resolves re-ratings. Bad lines are counted and skipped by default
//! because one stray line should not sink a 32-million-row import, while
//! `strict` turns the first one into an error for pipelines that must be exact.

use crate::{DatasetError, io_error};
use movierec_core::{EventTime, Movie, Rating};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// ml-latest-small, ml-25m, ml-32m: `ratings.csv`, `movies.csv` (UTF-8, quoted titles).
    Csv,
    /// ml-1m, ml-10m: `ratings.dat`, `movies.dat` with `::` separators (ml-1m is Latin-1).
    Dat,
    /// ml-100k: `u.data` (tabs) and `u.item` (pipes, Latin-1, genre flags).
    Ml100k,
}

impl Layout {
    /// Detection order: the newest layout first, as it is the most common.
    const ALL: [Layout; 3] = [Layout::Csv, Layout::Dat, Layout::Ml100k];

    pub fn ratings_file(self) -> &'static str {
        match self {
            Self::Csv => "ratings.csv",
            Self::Dat => "ratings.dat",
            Self::Ml100k => "u.data",
        }
    }

    pub fn movies_file(self) -> &'static str {
        match self {
            Self::Csv => "movies.csv",
            Self::Dat => "movies.dat",
            Self::Ml100k => "u.item",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatingRow {
    pub user_id: u64,
    pub movie_id: u64,
    pub rating: Rating,
    pub timestamp: EventTime,
}

/// Where and why a line was rejected, so the user can open the file at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub file: PathBuf,
    /// 1-based, counting the header.
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Rows handed to the callback.
    pub rows: u64,
    /// Lines skipped as malformed (all of them, not only those kept below).
    pub malformed: u64,
    /// The first few malformed lines: enough to diagnose, bounded in memory.
    pub first_malformed: Vec<Malformed>,
}

/// How many malformed lines a report keeps in full.
pub const REPORTED_MALFORMED: usize = 10;

impl ReadReport {
    fn reject(
        &mut self,
        file: &Path,
        line: u64,
        reason: String,
        strict: bool,
    ) -> Result<(), DatasetError> {
        let malformed = Malformed {
            file: file.to_path_buf(),
            line,
            reason,
        };
        if strict {
            return Err(DatasetError::Malformed(malformed));
        }
        self.malformed += 1;
        if self.first_malformed.len() < REPORTED_MALFORMED {
            self.first_malformed.push(malformed);
        }
        Ok(())
    }

    fn record<T>(
        &mut self,
        parsed: Result<T, String>,
        file: &Path,
        line: u64,
        strict: bool,
        on_row: &mut impl FnMut(T),
    ) -> Result<(), DatasetError> {
        match parsed {
            Ok(row) => {
                self.rows += 1;
                on_row(row);
                Ok(())
            }
            Err(reason) => self.reject(file, line, reason, strict),
        }
    }
}

/// Tells the layouts apart by their ratings file, the one every release has.
pub fn detect_layout(dir: &Path) -> Result<Layout, DatasetError> {
    Layout::ALL
        .into_iter()
        .find(|layout| dir.join(layout.ratings_file()).is_file())
        .ok_or_else(|| DatasetError::UnknownLayout {
            dir: dir.to_path_buf(),
        })
}

/// The ratings file's size, to size a progress bar fed by `read_ratings`.
pub fn ratings_file_size(dir: &Path, layout: Layout) -> Result<u64, DatasetError> {
    let path = dir.join(layout.ratings_file());
    Ok(std::fs::metadata(&path).map_err(io_error(&path))?.len())
}

/// UTF-8 when valid, Latin-1 otherwise: ml-1m and ml-100k are Latin-1 while
/// ml-10m is UTF-8, and every Latin-1 byte sequence decodes, so nothing is lost.
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// How often `read_ratings` reports progress.
const PROGRESS_EVERY: u64 = 1 << 20;

/// Calls `on_line(line_number, bytes)` for every line, without its line end
/// or a leading byte-order mark, reusing one buffer for the whole file.
fn for_each_line(
    path: &Path,
    mut on_progress: impl FnMut(u64),
    mut on_line: impl FnMut(u64, &[u8]) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buffer = Vec::with_capacity(256);
    let (mut number, mut bytes, mut reported) = (0u64, 0u64, 0u64);
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        number += 1;
        bytes += read as u64;
        while matches!(buffer.last(), Some(b'\n' | b'\r')) {
            buffer.pop();
        }
        let line = match number {
            1 => buffer.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buffer),
            _ => &buffer,
        };
        on_line(number, line)?;
        if bytes - reported >= PROGRESS_EVERY {
            on_progress(bytes);
            reported = bytes;
        }
    }
    on_progress(bytes);
    Ok(())
}

fn parse_id(text: &str, name: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| (1..=i64::MAX as u64).contains(id))
        .ok_or_else(|| format!("{name} `{text}` is not a positive integer"))
}

/// A run of ASCII digits short enough not to overflow, else `None`.
fn digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 18 {
        return None;
    }
    field.iter().try_fold(0u64, |value, &b| {
        b.is_ascii_digit().then(|| value * 10 + u64::from(b - b'0'))
    })
}

fn lossy(field: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(field)
}

// The byte-level fast paths below take the forms MovieLens writes (`123`,
// `4.5`, `964982703`) without UTF-8 checks or float parsing, which halves
// the time to read ml-32m; anything else goes through the core parsers, so
// what is accepted and the error messages stay theirs.

fn parse_id_field(field: &[u8], name: &str) -> Result<u64, String> {
    match digits(field) {
        Some(id) if id > 0 => Ok(id),
        _ => parse_id(&lossy(field), name),
    }
}

fn parse_rating_field(field: &[u8]) -> Result<Rating, String> {
    let half_stars = match *field {
        [whole] if whole.is_ascii_digit() => Some((whole - b'0') * 2),
        [whole, b'.', b'0' | b'5'] if whole.is_ascii_digit() => {
            Some((whole - b'0') * 2 + u8::from(field[2] == b'5'))
        }
        _ => None,
    };
    match half_stars {
        Some(half_stars) => Rating::from_half_stars(half_stars),
        None => Rating::parse(&lossy(field)),
    }
    .map_err(|e| e.to_string())
}

fn parse_timestamp_field(field: &[u8]) -> Result<EventTime, String> {
    match digits(field) {
        Some(seconds) => EventTime::from_epoch_seconds(seconds as i64),
        None => EventTime::parse(&lossy(field)),
    }
    .map_err(|e| e.to_string())
}

/// Fields separated by `::` (the `.dat` layout).
fn split_dat(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|w| w == b"::") {
            Some(at) => {
                rest = Some(&current[at + 2..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The four rating fields, or how many there were; no allocation per line.
fn four_fields<'a>(mut fields: impl Iterator<Item = &'a [u8]>) -> Result<[&'a [u8]; 4], usize> {
    let mut out: [&[u8]; 4] = [&[]; 4];
    for (index, slot) in out.iter_mut().enumerate() {
        *slot = fields.next().ok_or(index)?;
    }
    match fields.count() {
        0 => Ok(out),
        extra => Err(4 + extra),
    }
}

fn parse_rating_line(line: &[u8], layout: Layout) -> Result<RatingRow, String> {
    let fields = match layout {
        Layout::Csv => four_fields(line.split(|&b| b == b',')),
        Layout::Dat => four_fields(split_dat(line)),
        Layout::Ml100k => four_fields(line.split(|&b| b == b'\t')),
    }
    .map_err(|found| {
        format!("expected 4 fields (user, movie, rating, timestamp), found {found}")
    })?;
    Ok(RatingRow {
        user_id: parse_id_field(fields[0], "user id")?,
        movie_id: parse_id_field(fields[1], "movie id")?,
        rating: parse_rating_field(fields[2])?,
        timestamp: parse_timestamp_field(fields[3])?,
    })
}

/// Streams the ratings in file order. `on_progress` gets the bytes read so
/// far about every MiB and once at the end.
pub fn read_ratings(
    dir: &Path,
    layout: Layout,
    strict: bool,
    on_progress: impl FnMut(u64),
    on_rating: impl FnMut(RatingRow),
) -> Result<ReadReport, DatasetError> {
    read_ratings_file(
        &dir.join(layout.ratings_file()),
        layout,
        strict,
        on_progress,
        on_rating,
    )
}

/// [`read_ratings`] of any file in a layout's ratings format, such as
/// ML-100K's fold files `u1.base` … `u5.test`.
pub fn read_ratings_file(
    path: &Path,
    layout: Layout,
    strict: bool,
    on_progress: impl FnMut(u64),
    mut on_rating: impl FnMut(RatingRow),
) -> Result<ReadReport, DatasetError> {
    let path = path.to_path_buf();
    let mut report = ReadReport::default();
    for_each_line(&path, on_progress, |number, bytes| {
        let is_header = layout == Layout::Csv && number == 1 && bytes.starts_with(b"userId");
        if bytes.is_empty() || is_header {
            return Ok(());
        }
        // Every field must be a number, so a line with bytes that are not
        // UTF-8 always fails; only then is it worth saying why.
        let parsed =
            parse_rating_line(bytes, layout).map_err(|reason| match std::str::from_utf8(bytes) {
                Ok(_) => reason,
                Err(e) => format!("line is not valid UTF-8 (byte {})", e.valid_up_to() + 1),
            });
        report.record(parsed, &path, number, strict, &mut on_rating)
    })?;
    Ok(report)
}

/// The ml-100k genre order, used when `u.genre` is absent.
const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The names behind `u.item`'s flag columns, from `u.genre` (`name|index`
/// lines) when it is there, since that file is what defines the columns.
fn ml100k_genres(dir: &Path) -> Vec<String> {
    let from_file = std::fs::read(dir.join("u.genre")).ok().map(|bytes| {
        let mut named: Vec<(usize, String)> = decode(&bytes)
            .lines()
            .filter_map(|l| {
                let (name, index) = l.rsplit_once('|')?;
                Some((index.trim().parse().ok()?, name.trim().to_string()))
            })
            .collect();
        named.sort();
        named.into_iter().map(|(_, name)| name).collect::<Vec<_>>()
    });
    from_file
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| ML100K_GENRES.iter().map(|g| g.to_string()).collect())
}

fn parse_dat_movie(line: &str) -> Result<Movie, String> {
    let fields: Vec<&str> = line.split("::").collect();
    if fields.len() != 3 {
        return Err(format!(
            "expected 3 fields (MovieID::Title::Genres), found {}",
            fields.len()
        ));
    }
    parse_id(fields[0], "movie id").map(|id| Movie::new(id, fields[1], fields[2]))
}

/// `id|title|release date|video release date|IMDb URL|flag…`. The `unknown`
/// genre becomes no genre, as `(no genres listed)` does in the CSV layout.
fn parse_ml100k_movie(line: &str, genre_names: &[String]) -> Result<Movie, String> {
    let fields: Vec<&str> = line.split('|').collect();
    let expected = 5 + genre_names.len();
    if fields.len() < expected {
        return Err(format!(
            "expected {expected} fields (id|title|release date|video release date|IMDb URL|{} genre flags), found {}",
            genre_names.len(),
            fields.len()
        ));
    }
    let id = parse_id(fields[0], "movie id")?;
    let mut genres = Vec::new();
    for (flag, name) in fields[5..expected].iter().zip(genre_names) {
        match flag.trim() {
            "0" => {}
            "1" if name != "unknown" => genres.push(name.as_str()),
            "1" => {}
            other => return Err(format!("genre flag for {name} is `{other}`, not 0 or 1")),
        }
    }
    let mut movie = Movie::new(id, fields[1], &genres.join("|"));
    if movie.year.is_none() {
        // Release dates look like `01-Jan-1995`.
        movie.year = fields[2]
            .rsplit('-')
            .next()
            .and_then(|y| y.trim().parse().ok())
            .filter(|y| (1800..=2200).contains(y));
    }
    Ok(movie)
}

/// Reads every movie in file order.
pub fn read_movies(
    dir: &Path,
    layout: Layout,
    strict: bool,
    mut on_movie: impl FnMut(Movie),
) -> Result<ReadReport, DatasetError> {
    let path = dir.join(layout.movies_file());
    let mut report = ReadReport::default();
    match layout {
        Layout::Csv => read_csv_movies(&path, strict, &mut report, &mut on_movie)?,
        Layout::Dat => for_each_line(
            &path,
            |_| {},
            |number, bytes| {
                if bytes.is_empty() {
                    return Ok(());
                }
                let parsed = parse_dat_movie(&decode(bytes));
                report.record(parsed, &path, number, strict, &mut on_movie)
            },
        )?,
        Layout::Ml100k => {
            let genre_names = ml100k_genres(dir);
            for_each_line(
                &path,
                |_| {},
                |number, bytes| {
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    let parsed = parse_ml100k_movie(&decode(bytes), &genre_names);
                    report.record(parsed, &path, number, strict, &mut on_movie)
                },
            )?
        }
    }
    Ok(report)
}

/// `movies.csv` needs a real CSV parser: titles are quoted when they hold
/// commas (`"City of Lost Children, The (…) (1995)"`) and quotes are doubled.
fn read_csv_movies(
    path: &Path,
    strict: bool,
    report: &mut ReadReport,
    on_movie: &mut impl FnMut(Movie),
) -> Result<(), DatasetError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::new(file));
    for record in reader.byte_records() {
        let (line, parsed) = match record {
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(DatasetError::Io {
                        path: path.to_path_buf(),
                        source: e.into(),
                    });
                }
                (e.position().map_or(0, |p| p.line()), Err(e.to_string()))
            }
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let parsed = if record.len() != 3 {
                    Err(format!(
                        "expected 3 fields (movieId, title, genres), found {}",
                        record.len()
                    ))
                } else {
                    parse_id(&decode(&record[0]), "movie id")
                        .map(|id| Movie::new(id, &decode(&record[1]), &decode(&record[2])))
                };
                (line, parsed)
            }
        };
        report.record(parsed, path, line, strict, on_movie)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_agree_with_the_core_parsers() {
        for text in [
            "0", "1", "4", "5", "6", "9", "0.0", "0.5", "3.5", "4.0", "5.0", "5.5", "9.5", "4.3",
            "10", " 4.0", "4.", ".5", "4.50", "x", "", "1e0",
        ] {
            assert_eq!(
                parse_rating_field(text.as_bytes()),
                Rating::parse(text).map_err(|e| e.to_string()),
                "rating `{text}`"
            );
        }
        for text in [
            "0",
            "964982703",
            "253402300799",
            "253402300800",
            "999999999999999999",
            "99999999999999999999",
            "-5",
            "2025-03-15T10:30:00",
            " 12",
            "",
            "1.5",
        ] {
            assert_eq!(
                parse_timestamp_field(text.as_bytes()),
                EventTime::parse(text).map_err(|e| e.to_string()),
                "timestamp `{text}`"
            );
        }
        for text in [
            "1",
            "0",
            "007",
            " 42 ",
            "-1",
            "x",
            "",
            "9223372036854775808",
        ] {
            assert_eq!(
                parse_id_field(text.as_bytes(), "id"),
                parse_id(text, "id"),
                "id `{text}`"
            );
        }
    }

    #[test]
    fn dat_fields_split_on_double_colons_only() {
        let fields: Vec<&[u8]> = split_dat(b"1::Star: Wars::::x").collect();
        assert_eq!(fields, [&b"1"[..], b"Star: Wars", b"", b"x"]);
        assert_eq!(split_dat(b"").count(), 1);
    }
}
