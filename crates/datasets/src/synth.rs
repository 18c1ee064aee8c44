//! Synthetic MovieLens-format data with the shape of the real thing: a few
//! very popular movies, a heavy tail of active users, and ratings driven by
//! latent user and movie factors so collaborative filtering has a signal to
//! learn. Deterministic for a seed.

use crate::{DatasetError, io_error};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};
use std::collections::HashSet;
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

const RANK: usize = 8;
const GENRES: [&str; 18] = [
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

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn validate(p: &SynthParams) -> Result<(), DatasetError> {
    let fail = |m: String| Err(DatasetError::Invalid(m));
    if p.ratings == 0 || p.users == 0 || p.movies == 0 {
        return fail("--ratings, --users and --movies must all be positive".into());
    }
    if p.ratings < p.users {
        return fail(format!(
            "--ratings {} is fewer than --users {}: every user rates at least once",
            p.ratings, p.users
        ));
    }
    if p.ratings > p.users.saturating_mul(p.movies) / 2 {
        return fail(format!(
            "--ratings {} is more than half of users × movies ({} × {}): a user rates a movie at most once",
            p.ratings, p.users, p.movies
        ));
    }
    Ok(())
}

/// How many ratings each user gives: heavy-tailed, summing exactly to `ratings`.
fn activity(p: &SynthParams) -> Vec<u64> {
    let mut rng = rng_for(p.seed, 1);
    let lognormal = LogNormal::new(0.0, 1.1).expect("valid parameters");
    let weights: Vec<f64> = (0..p.users).map(|_| lognormal.sample(&mut rng)).collect();
    let total: f64 = weights.iter().sum();
    let cap = (p.movies / 2).max(1);
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| ((p.ratings as f64 * w / total) as u64).clamp(1, cap))
        .collect();
    let mut assigned: u64 = counts.iter().sum();
    // Round-robin corrections, deterministic, never past the cap or under 1.
    let users = counts.len();
    let mut i = 0usize;
    while assigned != p.ratings {
        let c = &mut counts[i % users];
        if assigned < p.ratings && *c < cap {
            *c += 1;
            assigned += 1;
        } else if assigned > p.ratings && *c > 1 {
            *c -= 1;
            assigned -= 1;
        }
        i += 1;
    }
    counts
}

pub fn generate(
    p: &SynthParams,
    out_dir: &Path,
    progress: bool,
) -> Result<SynthSummary, DatasetError> {
    validate(p)?;
    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let movies = p.movies as usize;

    // Movie popularity: Zipf-like over a seeded permutation of ids.
    let mut rng = rng_for(p.seed, 2);
    let mut order: Vec<usize> = (0..movies).collect();
    order.shuffle(&mut rng);
    let mut weight = vec![0f64; movies];
    for (rank, &movie) in order.iter().enumerate() {
        weight[movie] = 1.0 / (rank as f64 + 10.0).powf(1.1);
    }
    let mut cdf = Vec::with_capacity(movies);
    let mut acc = 0.0;
    for w in &weight {
        acc += w;
        cdf.push(acc);
    }
    let factor = Normal::new(0.0, 0.35).expect("valid");
    let movie_bias = Normal::new(0.0, 0.45).expect("valid");
    let movie_factors: Vec<[f32; RANK]> = (0..movies)
        .map(|_| std::array::from_fn(|_| factor.sample(&mut rng) as f32))
        .collect();
    let movie_biases: Vec<f32> = (0..movies)
        .map(|j| {
            (movie_bias.sample(&mut rng) + 0.15 * (weight[j] / weight[order[0]]).sqrt()) as f32
        })
        .collect();

    write_movies(p, out_dir, &mut rng_for(p.seed, 3))?;

    let path = out_dir.join("ratings.csv");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_error(&path))?);
    let bar = indicatif::ProgressBar::new(p.ratings);
    if !progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let user_bias = Normal::new(0.0, 0.35).expect("valid");
    let noise = Normal::new(0.0, 0.55).expect("valid");
    let counts = activity(p);
    let mut chosen: Vec<usize> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    let result: std::io::Result<()> = (|| {
        out.write_all(b"userId,movieId,rating,timestamp\n")?;
        for (user_index, &count) in counts.iter().enumerate() {
            let user = user_index as u64 + 1;
            let mut rng = rng_for(p.seed, 1000 + user);
            let bias = user_bias.sample(&mut rng);
            let factors: [f64; RANK] = std::array::from_fn(|_| factor.sample(&mut rng));
            chosen.clear();
            seen.clear();
            let count = count as usize;
            if count * 3 > movies {
                let mut all: Vec<usize> = (0..movies).collect();
                all.partial_shuffle(&mut rng, count);
                chosen.extend_from_slice(&all[..count]);
            } else {
                while chosen.len() < count {
                    let x = rng.random::<f64>() * acc;
                    let movie = cdf.partition_point(|&c| c < x).min(movies - 1);
                    if seen.insert(movie) {
                        chosen.push(movie);
                    }
                }
            }
            chosen.sort_unstable();
            let mut ts: i64 = rng.random_range(946_684_800..1_600_000_000);
            for &movie in &chosen {
                let dot: f64 = factors
                    .iter()
                    .zip(&movie_factors[movie])
                    .map(|(a, b)| a * *b as f64)
                    .sum();
                let raw =
                    3.5 + bias + movie_biases[movie] as f64 + 2.0 * dot + noise.sample(&mut rng);
                let half = (raw * 2.0).round().clamp(1.0, 10.0) as u8;
                ts += rng.random_range(1..600);
                writeln!(
                    out,
                    "{user},{},{}.{},{ts}",
                    movie + 1,
                    half / 2,
                    if half % 2 == 1 { 5 } else { 0 }
                )?;
            }
            bar.inc(count as u64);
        }
        out.flush()
    })();
    result.map_err(io_error(&path))?;
    bar.finish_and_clear();
    Ok(SynthSummary {
        ratings: p.ratings,
        users: p.users,
        movies: p.movies,
    })
}

fn write_movies(p: &SynthParams, out_dir: &Path, rng: &mut ChaCha8Rng) -> Result<(), DatasetError> {
    let path = out_dir.join("movies.csv");
    let mut writer = csv::Writer::from_path(&path)
        .map_err(|e| DatasetError::Invalid(format!("{}: {e}", path.display())))?;
    let result: Result<(), csv::Error> = (|| {
        writer.write_record(["movieId", "title", "genres"])?;
        for movie in 1..=p.movies {
            let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
            let noun = NOUNS[rng.random_range(0..NOUNS.len())];
            let year = rng.random_range(1930..2024);
            let title = match movie % 7 {
                0 => format!("{noun}, The ({year})"),
                3 => format!("{adjective} {noun} {movie} ({year})"),
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
    result.map_err(|e| DatasetError::Invalid(format!("cannot write {}: {e}", path.display())))
}
