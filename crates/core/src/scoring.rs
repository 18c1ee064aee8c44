//! The Bayesian weighted rating of the seed's Spark job (SPEC §5), and the
//! two secondary scores published beside it.
//!
//! For a movie with mean rating R over v ratings, with m = `min_ratings` and
//! C the mean over all rated movies of their R:
//! `score = v/(v+m)·R + m/(v+m)·C`. Only movies with v ≥ m are ranked; order
//! is score descending, then movie id ascending. C is summed in ascending
//! movie id order so every engine gets the same bits.

use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BayesianParams {
    /// m: the prior's weight and the minimum number of ratings to be ranked.
    pub min_ratings: u64,
    /// How many movies to keep.
    pub top_n: usize,
}

impl Default for BayesianParams {
    fn default() -> Self {
        Self {
            min_ratings: 50,
            top_n: 1000,
        }
    }
}

/// What the scorer needs of a movie: its count and exact rating sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovieCounts {
    pub movie_id: u64,
    pub count: u64,
    /// Sum of ratings in half stars.
    pub sum_half: u64,
}

impl MovieCounts {
    pub fn mean(&self) -> f64 {
        (self.sum_half as f64 / 2.0) / self.count as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoredMovie {
    pub movie_id: u64,
    pub score: f64,
    pub avg_rating: f64,
    pub rating_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopN {
    /// C: the mean over rated movies of their mean rating.
    pub global_mean: f64,
    /// Movies with at least `min_ratings` ratings.
    pub eligible: usize,
    pub movies: Vec<ScoredMovie>,
}

pub fn bayesian_score(count: u64, mean: f64, min_ratings: u64, global_mean: f64) -> f64 {
    let v = count as f64;
    let m = min_ratings as f64;
    (v / (v + m)) * mean + (m / (v + m)) * global_mean
}

/// Ranks movies by Bayesian weighted rating. Movies with no rating are ignored.
pub fn bayesian_top_n(movies: &[MovieCounts], params: BayesianParams) -> TopN {
    let mut rated: Vec<&MovieCounts> = movies.iter().filter(|m| m.count > 0).collect();
    rated.sort_unstable_by_key(|m| m.movie_id);
    let global_mean = if rated.is_empty() {
        0.0
    } else {
        rated.iter().map(|m| m.mean()).sum::<f64>() / rated.len() as f64
    };
    let mut ranked: Vec<ScoredMovie> = rated
        .iter()
        .filter(|m| m.count >= params.min_ratings)
        .map(|m| {
            let mean = m.mean();
            ScoredMovie {
                movie_id: m.movie_id,
                score: bayesian_score(m.count, mean, params.min_ratings, global_mean),
                avg_rating: mean,
                rating_count: m.count,
            }
        })
        .collect();
    let eligible = ranked.len();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.movie_id.cmp(&b.movie_id))
    });
    ranked.truncate(params.top_n);
    TopN {
        global_mean,
        eligible,
        movies: ranked,
    }
}

/// `popularity_score`: ln(1+v) / ln(1+v_max), in [0, 1]; the most-rated movie scores 1.
pub fn popularity_score(count: u64, max_count: u64) -> f64 {
    if max_count == 0 {
        0.0
    } else {
        (count as f64).ln_1p() / (max_count as f64).ln_1p()
    }
}

/// Each genre's share of all ratings: ratings of movies with that genre divided
/// by all ratings. A movie with several genres counts toward each.
pub fn genre_shares<'a>(
    movies: impl IntoIterator<Item = (&'a [String], u64)>,
) -> HashMap<String, f64> {
    let mut per_genre: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    for (genres, count) in movies {
        total += count;
        for genre in genres {
            *per_genre.entry(genre.clone()).or_default() += count;
        }
    }
    per_genre
        .into_iter()
        .map(|(genre, count)| {
            (
                genre,
                if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                },
            )
        })
        .collect()
}

/// `genre_match_score` for a non-personalized list: the mean share (see
/// [`genre_shares`]) of the movie's genres, i.e. how mainstream its genres are
/// with this audience. 0 for a movie without genres.
pub fn genre_match_score(genres: &[String], shares: &HashMap<String, f64>) -> f64 {
    if genres.is_empty() {
        return 0.0;
    }
    genres
        .iter()
        .map(|g| shares.get(g).copied().unwrap_or(0.0))
        .sum::<f64>()
        / genres.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movie(movie_id: u64, ratings: &[f64]) -> MovieCounts {
        MovieCounts {
            movie_id,
            count: ratings.len() as u64,
            sum_half: ratings.iter().map(|r| (r * 2.0) as u64).sum(),
        }
    }

    #[test]
    fn follows_the_seed_formula() {
        let movies = [
            movie(1, &[5.0, 5.0, 4.0]),
            movie(2, &[1.0, 2.0]),
            movie(3, &[3.0]),
        ];
        let params = BayesianParams {
            min_ratings: 2,
            top_n: 10,
        };
        let top = bayesian_top_n(&movies, params);
        let c = (14.0 / 3.0 + 1.5 + 3.0) / 3.0;
        assert!((top.global_mean - c).abs() < 1e-15);
        assert_eq!(top.eligible, 2);
        assert_eq!(top.movies.len(), 2);
        assert_eq!(top.movies[0].movie_id, 1);
        let expected = 3.0 / 5.0 * (14.0 / 3.0) + 2.0 / 5.0 * c;
        assert!((top.movies[0].score - expected).abs() < 1e-12);
    }

    #[test]
    fn ties_break_by_movie_id_and_top_n_truncates() {
        let movies = [
            movie(9, &[4.0, 4.0]),
            movie(3, &[4.0, 4.0]),
            movie(5, &[4.0, 4.0]),
        ];
        let top = bayesian_top_n(
            &movies,
            BayesianParams {
                min_ratings: 1,
                top_n: 2,
            },
        );
        let ids: Vec<u64> = top.movies.iter().map(|m| m.movie_id).collect();
        assert_eq!(ids, vec![3, 5]);
        assert_eq!(top.eligible, 3);
    }

    #[test]
    fn secondary_scores() {
        assert_eq!(popularity_score(100, 100), 1.0);
        assert!(popularity_score(10, 100) < popularity_score(50, 100));
        assert_eq!(popularity_score(0, 0), 0.0);
        let drama = vec!["Drama".to_string()];
        let both = vec!["Drama".to_string(), "Horror".to_string()];
        let shares = genre_shares([(drama.as_slice(), 3), (both.as_slice(), 1)]);
        assert_eq!(shares["Drama"], 1.0);
        assert_eq!(shares["Horror"], 0.25);
        assert_eq!(genre_match_score(&both, &shares), 0.625);
        assert_eq!(genre_match_score(&[], &shares), 0.0);
    }
}
