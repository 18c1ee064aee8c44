//! Synthetic MovieLens-format data with the shape of the real thing: a few
//! very popular movies, a heavy tail of active users, and ratings driven by
//! latent user and movie factors so collaborative filtering has a signal to
//! learn. It stands in for GroupLens data where that cannot be downloaded and
//! scales past ml-32m for load tests.
//!
//! Output is deterministic for a seed whatever the number of threads: every
//! user draws from its own ChaCha stream, and chunks of users are generated
//! in parallel but written in order.

use crate::{DatasetError, write_error};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthParams {
    pub ratings: u64,
    pub users: u64,
    pub movies: u64,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub ratings: u64,
    pub users: u64,
    pub movies: u64,
}

/// Latent factor rank, about what matrix factorisation finds in MovieLens.
const RANK: usize = 8;
/// MovieLens keeps users with at least 20 ratings; so do we when the
/// average allows it.
const MIN_PER_USER: u64 = 20;
/// Ratings generated per parallel work item: big enough to amortise thread
/// hand-offs, small enough to keep the buffers a few MiB.
/// Tiny under `cfg(test)`, so unit tests cover many chunks cheaply.
const RATINGS_PER_CHUNK: u64 = if cfg!(test) { 1 << 12 } else { 1 << 18 };

const GENRES: [&str; 19] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];
const ADJECTIVES: [&str; 16] = [
    "Quiet", "Broken", "Golden", "Last", "Hidden", "Silent", "Crimson", "Lost", "Wild", "Distant",
    "Bright", "Cold", "Secret", "Final", "Hollow", "Burning",
];
const NOUNS: [&str; 16] = [
    "Harbor", "River", "Empire", "Garden", "Signal", "Frontier", "Summer", "Machine", "Kingdom",
    "Station", "Mirror", "Horizon", "Voyage", "Letter", "Island", "Storm",
];

/// Independent streams of one seed: changing how many users or movies there
/// are never shifts another part's draws.
mod stream {
    pub const ACTIVITY: u64 = 1;
    pub const MOVIE_MODEL: u64 = 2;
    pub const TITLES: u64 = 3;
    pub const FIRST_USER: u64 = 1000;
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn validate(p: &SynthParams) -> Result<(), DatasetError> {
    let fail = |m: String| Err(DatasetError::Invalid(m));
    if p.ratings == 0 || p.users == 0 || p.movies == 0 {
        return fail(format!(
            "--ratings {}, --users {} and --movies {} must all be positive",
            p.ratings, p.users, p.movies
        ));
    }
    if p.ratings < p.users {
        return fail(format!(
            "--ratings {} is fewer than --users {}: every user rates at least one movie",
            p.ratings, p.users
        ));
    }
    if p.ratings > p.users.saturating_mul(p.movies) {
        return fail(format!(
            "--ratings {} is more than --users × --movies ({} × {} = {}): a user rates a movie at most once",
            p.ratings,
            p.users,
            p.movies,
            p.users.saturating_mul(p.movies)
        ));
    }
    if p.users > u32::MAX as u64 || p.movies > u32::MAX as u64 {
        return fail("--users and --movies must be below 2^32".into());
    }
    Ok(())
}

/// How many ratings each user gives: a floor, plus a log-normal share of the
/// rest (a few users rate thousands of movies), summing exactly to `ratings`.
fn activity(p: &SynthParams) -> Vec<u64> {
    let floor = (p.ratings / p.users / 5).clamp(1, MIN_PER_USER);
    let cap = p.movies;
    let spare = p.ratings - floor * p.users;
    let mut rng = rng_for(p.seed, stream::ACTIVITY);
    let lognormal = LogNormal::new(0.0, 1.2).expect("valid parameters");
    let weights: Vec<f64> = (0..p.users).map(|_| lognormal.sample(&mut rng)).collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| floor + ((spare as f64 * w / total) as u64).min(cap - floor))
        .collect();
    // Truncation and the cap leave a deficit: spread it over the users with
    // room. Terminates since ratings ≤ users × movies.
    let mut deficit = p.ratings - counts.iter().sum::<u64>();
    while deficit > 0 {
        let open = counts.iter().filter(|&&c| c < cap).count() as u64;
        let step = (deficit / open.max(1)).max(1);
        for count in counts.iter_mut() {
            let add = (cap - *count).min(step).min(deficit);
            *count += add;
            deficit -= add;
            if deficit == 0 {
                break;
            }
        }
    }
    counts
}

/// What every user's ratings are drawn from: movie popularity and the
/// movie side of the latent-factor model.
struct MovieModel {
    /// Cumulative popularity, for inverse-CDF sampling.
    cdf: Vec<f64>,
    popularity: Vec<f64>,
    factors: Vec<[f32; RANK]>,
    biases: Vec<f32>,
}

impl MovieModel {
    fn new(p: &SynthParams) -> Self {
        let movies = p.movies as usize;
        let mut rng = rng_for(p.seed, stream::MOVIE_MODEL);
        // Zipf-like popularity over a seeded permutation of ids, so popular
        // movies are spread over the id range as in MovieLens.
        let mut order: Vec<usize> = (0..movies).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        let mut popularity = vec![0f64; movies];
        for (rank, &movie) in order.iter().enumerate() {
            popularity[movie] = 1.0 / (rank as f64 + 10.0).powf(1.1);
        }
        let cdf = popularity
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let factor = Normal::new(0.0, 0.35).expect("valid parameters");
        let bias = Normal::new(0.0, 0.45).expect("valid parameters");
        let top = popularity[order[0]];
        let factors = (0..movies)
            .map(|_| std::array::from_fn(|_| factor.sample(&mut rng) as f32))
            .collect();
        // Popular movies are rated a little higher, as in MovieLens.
        let biases = popularity
            .iter()
            .map(|w| (bias.sample(&mut rng) + 0.3 * (w / top).sqrt()) as f32)
            .collect();
        Self {
            cdf,
            popularity,
            factors,
            biases,
        }
    }
}

/// Per-thread scratch space reused across users.
struct Scratch {
    /// `marks[movie] == stamp` when the current user already rated it.
    marks: Vec<u32>,
    stamp: u32,
    chosen: Vec<u32>,
    keys: Vec<(f64, u32)>,
}

/// Earliest and latest rating times: 1996-01-01 to 2023-10-01, the span of
/// MovieLens.
const FIRST_SECOND: i64 = 820_454_400;
const LAST_SECOND: i64 = 1_696_118_400;

/// Appends one user's ratings, sorted by movie id, as `ratings.csv` lines.
fn user_ratings(
    seed: u64,
    user: u64,
    count: u64,
    model: &MovieModel,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) {
    let movies = model.cdf.len();
    let count = count as usize;
    let mut rng = rng_for(seed, stream::FIRST_USER + user);
    let user_bias = Normal::new(0.0, 0.35).expect("valid parameters");
    let factor = Normal::new(0.0, 0.35).expect("valid parameters");
    let noise = Normal::new(0.0, 0.55).expect("valid parameters");
    let bias = user_bias.sample(&mut rng);
    let factors: [f64; RANK] = std::array::from_fn(|_| factor.sample(&mut rng));

    let chosen = &mut scratch.chosen;
    chosen.clear();
    if count * 3 > movies {
        // Weighted sampling without replacement (Efraimidis–Spirakis): for
        // users who rate a large part of the catalogue, where rejection
        // sampling would redraw the popular movies over and over.
        scratch.keys.clear();
        scratch.keys.extend((0..movies).map(|m| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (u.ln() / model.popularity[m], m as u32)
        }));
        if count < movies {
            scratch
                .keys
                .select_nth_unstable_by(count, |a, b| b.0.total_cmp(&a.0));
        }
        chosen.extend(scratch.keys[..count].iter().map(|&(_, m)| m));
    } else {
        scratch.stamp = scratch.stamp.wrapping_add(1);
        if scratch.stamp == 0 {
            scratch.marks.fill(0);
            scratch.stamp = 1;
        }
        let total = model.cdf[movies - 1];
        while chosen.len() < count {
            let x = rng.random::<f64>() * total;
            let movie = model.cdf.partition_point(|&c| c < x).min(movies - 1);
            if scratch.marks[movie] != scratch.stamp {
                scratch.marks[movie] = scratch.stamp;
                chosen.push(movie as u32);
            }
        }
    }
    chosen.sort_unstable();

    // Each user is active over a stretch of the MovieLens era.
    let span = rng.random_range(86_400..4 * 365 * 86_400);
    let start = rng.random_range(FIRST_SECOND..LAST_SECOND - span);
    for &movie in chosen.iter() {
        let movie = movie as usize;
        let dot: f64 = factors
            .iter()
            .zip(&model.factors[movie])
            .map(|(a, b)| a * f64::from(*b))
            .sum();
        let raw = 3.5 + bias + f64::from(model.biases[movie]) + 2.0 * dot + noise.sample(&mut rng);
        let half_stars = (raw * 2.0).round().clamp(1.0, 10.0) as u8;
        let timestamp = start + rng.random_range(0..span);
        push_u64(out, user);
        out.push(b',');
        push_u64(out, movie as u64 + 1);
        out.extend_from_slice(&[
            b',',
            b'0' + half_stars / 2,
            b'.',
            if half_stars % 2 == 1 { b'5' } else { b'0' },
            b',',
        ]);
        push_u64(out, timestamp as u64);
        out.push(b'\n');
    }
}

/// Decimal digits without `fmt`, which dominated the run time.
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Consecutive users holding about `RATINGS_PER_CHUNK` ratings: the unit of
/// parallel work, written in order.
fn chunks(counts: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut held) = (0, 0);
    for (user, &count) in counts.iter().enumerate() {
        held += count;
        if held >= RATINGS_PER_CHUNK {
            chunks.push(start..user + 1);
            (start, held) = (user + 1, 0);
        }
    }
    if start < counts.len() {
        chunks.push(start..counts.len());
    }
    chunks
}

/// Writes `ratings.csv` and `movies.csv` into `out_dir`, using every core.
pub fn generate(
    p: &SynthParams,
    out_dir: &Path,
    progress: bool,
) -> Result<SynthSummary, DatasetError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    generate_with_threads(p, out_dir, progress, threads)
}

fn generate_with_threads(
    p: &SynthParams,
    out_dir: &Path,
    progress: bool,
    threads: usize,
) -> Result<SynthSummary, DatasetError> {
    validate(p)?;
    std::fs::create_dir_all(out_dir).map_err(write_error(out_dir))?;
    write_movies(p, out_dir)?;

    let model = MovieModel::new(p);
    let counts = activity(p);
    let chunks = chunks(&counts);

    let path = out_dir.join("ratings.csv");
    let file = File::create(&path).map_err(write_error(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bar = indicatif::ProgressBar::new(p.ratings);
    if progress {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {wide_bar} {human_pos}/{human_len} eta {eta}",
            )
            .expect("valid template"),
        );
        bar.set_message("generating ratings");
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut scratches: Vec<Scratch> = (0..threads)
        .map(|_| Scratch {
            marks: vec![0; p.movies as usize],
            stamp: 0,
            chosen: Vec::new(),
            keys: Vec::new(),
        })
        .collect();
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); threads];
    out.write_all(b"userId,movieId,rating,timestamp\n")
        .map_err(write_error(&path))?;
    // Rounds of `threads` chunks: each thread fills its buffer, then the
    // buffers are written in chunk order, which keeps the file sorted and
    // byte-identical whatever the thread count.
    for round in chunks.chunks(threads) {
        std::thread::scope(|scope| {
            for ((range, scratch), buffer) in round
                .iter()
                .zip(scratches.iter_mut())
                .zip(buffers.iter_mut())
            {
                let (model, counts) = (&model, &counts);
                scope.spawn(move || {
                    buffer.clear();
                    for user in range.clone() {
                        user_ratings(
                            p.seed,
                            user as u64 + 1,
                            counts[user],
                            model,
                            scratch,
                            buffer,
                        );
                    }
                });
            }
        });
        for (range, buffer) in round.iter().zip(&buffers) {
            out.write_all(buffer).map_err(write_error(&path))?;
            bar.inc(counts[range.clone()].iter().sum());
        }
    }
    out.flush().map_err(write_error(&path))?;
    bar.finish_and_clear();
    Ok(SynthSummary {
        ratings: p.ratings,
        users: p.users,
        movies: p.movies,
    })
}

/// `movies.csv` with titles in the MovieLens style, including the awkward
/// ones (commas, quotes) that readers must cope with.
fn write_movies(p: &SynthParams, out_dir: &Path) -> Result<(), DatasetError> {
    let path = out_dir.join("movies.csv");
    let mut rng = rng_for(p.seed, stream::TITLES);
    let file = File::create(&path).map_err(write_error(&path))?;
    let mut writer = csv::Writer::from_writer(BufWriter::new(file));
    let result: Result<(), csv::Error> = (|| {
        writer.write_record(["movieId", "title", "genres"])?;
        for movie in 1..=p.movies {
            let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
            let noun = NOUNS[rng.random_range(0..NOUNS.len())];
            let year = rng.random_range(1930..2024);
            let title = match movie % 7 {
                0 => format!("{adjective} {noun}, The ({year})"),
                3 => format!("{adjective} {noun} {movie} ({year})"),
                5 if movie % 5 == 0 => format!("\"{adjective}\" {noun} ({year})"),
                _ => format!("{adjective} {noun} ({year})"),
            };
            let genres = if movie % 50 == 0 {
                "(no genres listed)".to_string()
            } else {
                let mut picked: Vec<&str> = (0..rng.random_range(1..4))
                    .map(|_| GENRES[rng.random_range(0..GENRES.len())])
                    .collect();
                picked.sort_unstable();
                picked.dedup();
                picked.join("|")
            };
            writer.write_record([movie.to_string(), title, genres])?;
        }
        writer.flush()?;
        Ok(())
    })();
    result.map_err(|e| DatasetError::Write {
        path: path.clone(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_whatever_the_thread_count() {
        let p = SynthParams {
            ratings: 20 * RATINGS_PER_CHUNK + 123,
            users: 3_000,
            movies: 2_000,
            seed: 11,
        };
        let files: Vec<Vec<u8>> = [1, 3]
            .into_iter()
            .map(|threads| {
                let dir = tempfile::tempdir().unwrap();
                generate_with_threads(&p, dir.path(), false, threads).unwrap();
                std::fs::read(dir.path().join("ratings.csv")).unwrap()
            })
            .collect();
        assert!(chunks(&activity(&p)).len() >= 20);
        assert!(files[0] == files[1], "1 and 3 threads differ");
    }

    #[test]
    fn activity_sums_exactly_with_a_floor_and_a_heavy_tail() {
        for (ratings, users, movies) in [
            (100_000, 1_000, 2_000),
            (600, 20, 30),
            (599, 20, 30),
            (7, 7, 1),
            (1_000, 10, 100),
        ] {
            let p = SynthParams {
                ratings,
                users,
                movies,
                seed: 3,
            };
            let counts = activity(&p);
            assert_eq!(counts.iter().sum::<u64>(), ratings, "{p:?}");
            assert!(counts.iter().all(|&c| (1..=movies).contains(&c)), "{p:?}");
        }
        let p = SynthParams {
            ratings: 100_000,
            users: 1_000,
            movies: 2_000,
            seed: 3,
        };
        let mut counts = activity(&p);
        counts.sort_unstable();
        assert!(counts[0] >= MIN_PER_USER, "{}", counts[0]);
        let median = counts[counts.len() / 2];
        assert!(counts[counts.len() - 1] > 8 * median, "{counts:?}");
    }

    #[test]
    fn integers_print_like_display() {
        for value in [0, 7, 10, 1_234_567_890, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }
}
