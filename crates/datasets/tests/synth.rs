//! Synthetic data: exact, valid, deterministic, skewed like MovieLens, and
//! with a latent-factor signal a collaborative-filtering model can learn.

use movierec_datasets::movielens::{Layout, RatingRow, read_movies, read_ratings};
use movierec_datasets::synth::{SynthParams, SynthSummary, generate};
use std::collections::HashMap;
use std::path::Path;

const PARAMS: SynthParams = SynthParams {
    ratings: 60_000,
    users: 600,
    movies: 1_000,
    seed: 7,
};

fn generated(params: &SynthParams) -> (tempfile::TempDir, Vec<RatingRow>) {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(params, dir.path(), false).unwrap();
    assert_eq!(
        summary,
        SynthSummary {
            ratings: params.ratings,
            users: params.users,
            movies: params.movies,
        }
    );
    let mut rows = Vec::new();
    let report = read_ratings(dir.path(), Layout::Csv, true, |_| {}, |r| rows.push(r)).unwrap();
    assert_eq!(report.rows, params.ratings);
    (dir, rows)
}

fn file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn deterministic_for_a_seed() {
    let (a, _) = generated(&PARAMS);
    let (b, _) = generated(&PARAMS);
    for name in ["ratings.csv", "movies.csv"] {
        assert!(
            file(a.path(), name) == file(b.path(), name),
            "{name} differs"
        );
    }
    let (c, _) = generated(&SynthParams { seed: 8, ..PARAMS });
    assert!(file(a.path(), "ratings.csv") != file(c.path(), "ratings.csv"));
}

#[test]
fn exact_sorted_unique_and_valid() {
    let (dir, rows) = generated(&PARAMS);
    let ratings = String::from_utf8(file(dir.path(), "ratings.csv")).unwrap();
    let mut lines = ratings.lines();
    assert_eq!(lines.next(), Some("userId,movieId,rating,timestamp"));
    // MovieLens writes ratings as 4.0 / 3.5 and epoch seconds.
    let line = lines.next().unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert!(fields[2].len() == 3 && (fields[2].ends_with(".0") || fields[2].ends_with(".5")));
    assert!(fields[3].len() == 9 || fields[3].len() == 10, "{line}");
    assert_eq!(ratings.lines().count() as u64, PARAMS.ratings + 1);

    let keys: Vec<(u64, u64)> = rows.iter().map(|r| (r.user_id, r.movie_id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "sorted by user then movie, with no duplicate (user, movie)"
    );
    assert!(rows.iter().all(|r| (1..=PARAMS.users).contains(&r.user_id)));
    assert!(
        rows.iter()
            .all(|r| (1..=PARAMS.movies).contains(&r.movie_id))
    );
    // 1996 to 2023, like MovieLens.
    assert!(
        rows.iter()
            .all(|r| (820_454_400_000..1_700_000_000_000).contains(&r.timestamp.millis()))
    );

    let mut per_user: HashMap<u64, u64> = HashMap::new();
    for r in &rows {
        *per_user.entry(r.user_id).or_default() += 1;
    }
    assert_eq!(per_user.len() as u64, PARAMS.users, "every user rates");
    let mut counts: Vec<u64> = per_user.into_values().collect();
    counts.sort_unstable();
    assert!(
        counts[0] >= 20,
        "every user rates a few movies: {}",
        counts[0]
    );
    let median = counts[counts.len() / 2];
    assert!(
        counts[counts.len() - 1] >= 5 * median,
        "heavy users: max {} vs median {median}",
        counts[counts.len() - 1]
    );

    let mut histogram = [0u64; 11];
    for r in &rows {
        histogram[r.rating.half_stars() as usize] += 1;
    }
    assert!(
        histogram[1..].iter().all(|&n| n > 0),
        "every half star used: {histogram:?}"
    );
    let mean = rows.iter().map(|r| r.rating.value()).sum::<f64>() / rows.len() as f64;
    assert!((3.2..3.8).contains(&mean), "mean rating {mean}");
}

#[test]
fn movies_csv_reads_back_with_years_commas_and_quotes() {
    let (dir, _) = generated(&PARAMS);
    let mut movies = Vec::new();
    let report = read_movies(dir.path(), Layout::Csv, true, |m| movies.push(m)).unwrap();
    assert_eq!(report.rows, PARAMS.movies);
    let ids: Vec<u64> = movies.iter().map(|m| m.movie_id).collect();
    assert_eq!(ids, (1..=PARAMS.movies).collect::<Vec<_>>());
    assert!(
        movies
            .iter()
            .all(|m| m.year.is_some_and(|y| (1900..2030).contains(&y)))
    );
    assert!(movies.iter().any(|m| m.title.contains(", The (")));
    assert!(movies.iter().any(|m| m.title.contains('"')));
    let text = String::from_utf8(file(dir.path(), "movies.csv")).unwrap();
    assert!(text.starts_with("movieId,title,genres\n"));
    assert!(text.contains(",(no genres listed)\n"));
    let no_genres = movies.iter().filter(|m| m.genres.is_empty()).count();
    assert!(
        (1..PARAMS.movies as usize / 10).contains(&no_genres),
        "{no_genres}"
    );
    const MOVIELENS_GENRES: [&str; 19] = [
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
    assert!(
        movies
            .iter()
            .flat_map(|m| &m.genres)
            .all(|g| MOVIELENS_GENRES.contains(&g.as_str()))
    );
}

#[test]
fn popularity_is_skewed_like_movielens() {
    let (_dir, rows) = generated(&PARAMS);
    let mut per_movie = vec![0u64; PARAMS.movies as usize + 1];
    for r in &rows {
        per_movie[r.movie_id as usize] += 1;
    }
    per_movie.sort_unstable_by(|a, b| b.cmp(a));
    let top_1_percent = PARAMS.movies as usize / 100;
    let share = per_movie[..top_1_percent].iter().sum::<u64>() as f64 / rows.len() as f64;
    assert!(
        share > 0.05,
        "top 1% of movies get {share:.3} of ratings (uniform: 0.01)"
    );
}

/// Held-out RMSE of a rank-8 matrix factorisation must clearly beat user and
/// movie biases alone: the ratings carry a latent-factor signal, not only
/// per-user and per-movie offsets.
#[test]
fn latent_factors_are_learnable() {
    let (_dir, rows) = generated(&SynthParams {
        ratings: 80_000,
        users: 800,
        movies: 800,
        seed: 5,
    });
    let (train, test): (Vec<_>, Vec<_>) = rows.iter().enumerate().partition(|(i, _)| i % 5 != 0);
    let triple =
        |(_, r): &(usize, &RatingRow)| (r.user_id as usize, r.movie_id as usize, r.rating.value());
    let train: Vec<(usize, usize, f64)> = train.iter().map(triple).collect();
    let test: Vec<(usize, usize, f64)> = test.iter().map(triple).collect();
    let mean = train.iter().map(|t| t.2).sum::<f64>() / train.len() as f64;

    // Model: mean + bu + bi (+ pu · qi), fitted by SGD.
    let fit = |rank: usize| {
        let mut bu = vec![0.0; 801];
        let mut bi = vec![0.0; 801];
        let init = |i: usize| ((i * 7919 % 1000) as f64 / 1000.0 - 0.5) * 0.1;
        let mut p: Vec<f64> = (0..801 * rank).map(init).collect();
        let mut q: Vec<f64> = (0..801 * rank).map(|i| init(i + 1)).collect();
        let predict = |bu: &[f64], bi: &[f64], p: &[f64], q: &[f64], u: usize, i: usize| {
            let dot: f64 = (0..rank).map(|k| p[u * rank + k] * q[i * rank + k]).sum();
            mean + bu[u] + bi[i] + dot
        };
        let (rate, reg) = (0.01, 0.05);
        for _ in 0..40 {
            for &(u, i, r) in &train {
                let e = r - predict(&bu, &bi, &p, &q, u, i);
                bu[u] += rate * (e - reg * bu[u]);
                bi[i] += rate * (e - reg * bi[i]);
                for k in 0..rank {
                    let (pu, qi) = (p[u * rank + k], q[i * rank + k]);
                    p[u * rank + k] += rate * (e * qi - reg * pu);
                    q[i * rank + k] += rate * (e * pu - reg * qi);
                }
            }
        }
        let squared: f64 = test
            .iter()
            .map(|&(u, i, r)| (r - predict(&bu, &bi, &p, &q, u, i).clamp(0.5, 5.0)).powi(2))
            .sum();
        (squared / test.len() as f64).sqrt()
    };
    let global =
        (test.iter().map(|t| (t.2 - mean).powi(2)).sum::<f64>() / test.len() as f64).sqrt();
    let biases = fit(0);
    let factors = fit(8);
    assert!(
        biases < global - 0.05 && factors < biases - 0.05,
        "held-out RMSE: global mean {global:.3}, biases {biases:.3}, rank-8 factors {factors:.3}"
    );
}

#[test]
fn params_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let error = |ratings, users, movies| {
        generate(
            &SynthParams {
                ratings,
                users,
                movies,
                seed: 1,
            },
            dir.path(),
            false,
        )
        .unwrap_err()
        .to_string()
    };
    let message = error(101, 10, 10);
    assert!(
        message.contains("--ratings 101") && message.contains("10 × 10"),
        "{message}"
    );
    let message = error(0, 10, 10);
    assert!(message.contains("positive"), "{message}");
    let message = error(10, 10, 0);
    assert!(message.contains("positive"), "{message}");
    let message = error(5, 10, 10);
    assert!(message.contains("every user"), "{message}");
    assert!(
        !dir.path().join("ratings.csv").exists(),
        "nothing written on bad params"
    );

    // The full matrix is allowed: every user rates every movie once.
    let (_dir, rows) = generated(&SynthParams {
        ratings: 100,
        users: 10,
        movies: 10,
        seed: 1,
    });
    assert_eq!(rows.len(), 100);
}
