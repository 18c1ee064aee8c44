//! Streaming readers for the MovieLens layouts. Rows come out in file order;
//! the caller resolves re-ratings.

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
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Self::Csv => ("ratings.csv", "movies.csv"),
            Self::Dat => ("ratings.dat", "movies.dat"),
            Self::Ml100k => ("u.data", "u.item"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingRow {
    pub user_id: u64,
    pub movie_id: u64,
    pub rating: Rating,
    pub timestamp: EventTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub file: PathBuf,
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
    pub rows: u64,
    pub malformed: u64,
    /// The first few malformed lines, for the summary.
    pub first_malformed: Vec<Malformed>,
}

const REPORTED: usize = 10;

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
        if self.first_malformed.len() < REPORTED {
            self.first_malformed.push(malformed);
        }
        Ok(())
    }
}

pub fn detect_layout(dir: &Path) -> Result<Layout, DatasetError> {
    [Layout::Csv, Layout::Dat, Layout::Ml100k]
        .into_iter()
        .find(|layout| dir.join(layout.files().0).is_file())
        .ok_or_else(|| DatasetError::UnknownLayout {
            dir: dir.to_path_buf(),
        })
}

pub fn ratings_file_size(dir: &Path, layout: Layout) -> Result<u64, DatasetError> {
    let path = dir.join(layout.files().0);
    Ok(std::fs::metadata(&path).map_err(io_error(&path))?.len())
}

/// UTF-8 when valid, Latin-1 otherwise (ml-1m and ml-100k are Latin-1).
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Calls `on_line(line_number, bytes)` for every line without its line end.
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
        on_line(number, &buffer)?;
        if bytes - reported >= 1 << 20 {
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

fn parse_rating_fields(fields: &[&str]) -> Result<RatingRow, String> {
    if fields.len() != 4 {
        return Err(format!(
            "expected 4 fields (user, movie, rating, timestamp), found {}",
            fields.len()
        ));
    }
    Ok(RatingRow {
        user_id: parse_id(fields[0], "user id")?,
        movie_id: parse_id(fields[1], "movie id")?,
        rating: Rating::parse(fields[2]).map_err(|e| e.to_string())?,
        timestamp: EventTime::parse(fields[3]).map_err(|e| e.to_string())?,
    })
}

pub fn read_ratings(
    dir: &Path,
    layout: Layout,
    strict: bool,
    on_progress: impl FnMut(u64),
    mut on_rating: impl FnMut(RatingRow),
) -> Result<ReadReport, DatasetError> {
    let path = dir.join(layout.files().0);
    let mut report = ReadReport::default();
    for_each_line(&path, on_progress, |number, bytes| {
        if bytes.is_empty()
            || (layout == Layout::Csv && number == 1 && bytes.starts_with(b"userId"))
        {
            return Ok(());
        }
        let parsed = match std::str::from_utf8(bytes) {
            Err(_) => Err("line is not valid UTF-8".to_string()),
            Ok(line) => {
                let fields: Vec<&str> = match layout {
                    Layout::Csv => line.split(',').collect(),
                    Layout::Dat => line.split("::").collect(),
                    Layout::Ml100k => line.split('\t').collect(),
                };
                parse_rating_fields(&fields)
            }
        };
        match parsed {
            Ok(row) => {
                report.rows += 1;
                on_rating(row);
                Ok(())
            }
            Err(reason) => report.reject(&path, number, reason, strict),
        }
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

fn ml100k_genres(dir: &Path) -> Vec<String> {
    let from_file = std::fs::read(dir.join("u.genre")).ok().map(|bytes| {
        let mut named: Vec<(usize, String)> = decode(&bytes)
            .lines()
            .filter_map(|l| {
                let (name, index) = l.rsplit_once('|')?;
                Some((index.trim().parse().ok()?, name.to_string()))
            })
            .collect();
        named.sort();
        named.into_iter().map(|(_, name)| name).collect::<Vec<_>>()
    });
    from_file
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| ML100K_GENRES.iter().map(|g| g.to_string()).collect())
}

pub fn read_movies(
    dir: &Path,
    layout: Layout,
    strict: bool,
    mut on_movie: impl FnMut(Movie),
) -> Result<ReadReport, DatasetError> {
    let path = dir.join(layout.files().1);
    let mut report = ReadReport::default();
    if layout == Layout::Csv {
        let file = File::open(&path).map_err(io_error(&path))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(file);
        for record in reader.byte_records() {
            let (line, parsed) = match record {
                Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
                Ok(record) => {
                    let line = record.position().map_or(0, |p| p.line());
                    let parsed = if record.len() != 3 {
                        Err(format!(
                            "expected 3 fields (movieId, title, genres), found {}",
                            record.len()
                        ))
                    } else {
                        std::str::from_utf8(&record[0])
                            .map_err(|_| "movie id is not UTF-8".to_string())
                            .and_then(|id| parse_id(id, "movie id"))
                            .map(|id| Movie::new(id, &decode(&record[1]), &decode(&record[2])))
                    };
                    (line, parsed)
                }
            };
            match parsed {
                Ok(movie) => {
                    report.rows += 1;
                    on_movie(movie);
                }
                Err(reason) => report.reject(&path, line, reason, strict)?,
            }
        }
        return Ok(report);
    }
    let genres_100k = (layout == Layout::Ml100k).then(|| ml100k_genres(dir));
    for_each_line(
        &path,
        |_| {},
        |number, bytes| {
            if bytes.is_empty() {
                return Ok(());
            }
            let line = decode(bytes);
            let parsed = match &genres_100k {
                None => {
                    let fields: Vec<&str> = line.split("::").collect();
                    if fields.len() != 3 {
                        Err(format!(
                            "expected 3 fields (MovieID::Title::Genres), found {}",
                            fields.len()
                        ))
                    } else {
                        parse_id(fields[0], "movie id")
                            .map(|id| Movie::new(id, fields[1], fields[2]))
                    }
                }
                Some(genre_names) => {
                    let fields: Vec<&str> = line.split('|').collect();
                    if fields.len() < 5 + genre_names.len() {
                        Err(format!(
                            "expected {} fields (id|title|release date|video date|url|genre flags), found {}",
                            5 + genre_names.len(),
                            fields.len()
                        ))
                    } else {
                        parse_id(fields[0], "movie id").map(|id| {
                            let genres: Vec<&str> = fields[5..5 + genre_names.len()]
                                .iter()
                                .zip(genre_names)
                                .filter(|(flag, name)| {
                                    flag.trim() == "1" && name.as_str() != "unknown"
                                })
                                .map(|(_, name)| name.as_str())
                                .collect();
                            let mut movie = Movie::new(id, fields[1], &genres.join("|"));
                            if movie.year.is_none() {
                                movie.year = fields[2]
                                    .rsplit('-')
                                    .next()
                                    .and_then(|y| y.trim().parse().ok());
                            }
                            movie
                        })
                    }
                }
            };
            match parsed {
                Ok(movie) => {
                    report.rows += 1;
                    on_movie(movie);
                    Ok(())
                }
                Err(reason) => report.reject(&path, number, reason, strict),
            }
        },
    )?;
    Ok(report)
}
