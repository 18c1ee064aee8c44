//! Offline evaluation: train/test splits of a ratings log and the metrics of
//! rating prediction (RMSE, MAE) and of top-K ranking (precision, recall,
//! nDCG, MAP, catalogue coverage). Definitions follow Microsoft
//! Recommenders, so figures compare with its published benchmarks; see
//! `docs/EVALUATION.md`.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// One rating of the log being evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u64,
    pub item: u64,
    pub rating: f64,
    /// Seconds since the epoch (the temporal split orders by it).
    pub time: i64,
}

/// How a ratings log is cut into training and test sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// `random:FRACTION:SEED`: every rating independently, FRACTION to training.
    Random { train_fraction: f64, seed: u64 },
    /// `temporal[:FRACTION]`: per user, the earliest FRACTION of their
    /// ratings to training and the latest to test (default 0.9).
    Temporal { train_fraction: f64 },
    /// `stratified:FRACTION:SEED`: per user, a seeded shuffle and then
    /// round(FRACTION·n) ratings to training (Microsoft Recommenders'
    /// `python_stratified_split`), so every user is in both sets.
    Stratified { train_fraction: f64, seed: u64 },
    /// `ml100k-folds`: MovieLens-100K's own five folds `u1.base`/`u1.test` …
    /// `u5`; the files come with the dataset.
    Ml100kFolds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitParseError(pub String);

impl fmt::Display for SplitParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SplitParseError {}

const SPLIT_FORMS: &str =
    "random:FRACTION:SEED, temporal[:FRACTION], stratified:FRACTION:SEED or ml100k-folds";

impl FromStr for Split {
    type Err = SplitParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(':').collect();
        let fraction = |s: &str| -> Result<f64, SplitParseError> {
            match s.parse::<f64>() {
                Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
                _ => Err(SplitParseError(format!(
                    "split `{text}`: the training fraction `{s}` must be a number between 0 and 1 (exclusive)"
                ))),
            }
        };
        let seed = |s: &str| -> Result<u64, SplitParseError> {
            s.parse::<u64>().map_err(|_| {
                SplitParseError(format!(
                    "split `{text}`: the seed `{s}` must be a non-negative integer"
                ))
            })
        };
        match parts.as_slice() {
            ["random", f, s] => Ok(Self::Random {
                train_fraction: fraction(f)?,
                seed: seed(s)?,
            }),
            ["stratified", f, s] => Ok(Self::Stratified {
                train_fraction: fraction(f)?,
                seed: seed(s)?,
            }),
            ["temporal"] => Ok(Self::Temporal {
                train_fraction: 0.9,
            }),
            ["temporal", f] => Ok(Self::Temporal {
                train_fraction: fraction(f)?,
            }),
            ["ml100k-folds"] => Ok(Self::Ml100kFolds),
            _ => Err(SplitParseError(format!(
                "unknown split `{text}`; expected {SPLIT_FORMS}"
            ))),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random {
                train_fraction,
                seed,
            } => write!(f, "random:{train_fraction}:{seed}"),
            Self::Temporal { train_fraction } => write!(f, "temporal:{train_fraction}"),
            Self::Stratified {
                train_fraction,
                seed,
            } => write!(f, "stratified:{train_fraction}:{seed}"),
            Self::Ml100kFolds => f.write_str("ml100k-folds"),
        }
    }
}

/// A training set and its test set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fold {
    pub train: Vec<Interaction>,
    pub test: Vec<Interaction>,
}

/// Cuts `log` by a split computed from the data alone (every split but
/// [`Split::Ml100kFolds`], whose folds are files). The result depends only
/// on the log's content and the seed, not on its order.
pub fn split(log: &[Interaction], split: Split) -> Option<Fold> {
    let mut sorted = log.to_vec();
    // Canonical order first, so a shuffled file gives the same split.
    sorted.sort_by(|a, b| {
        (a.user, a.item, a.time)
            .cmp(&(b.user, b.item, b.time))
            .then(a.rating.total_cmp(&b.rating))
    });
    let mut fold = Fold::default();
    match split {
        Split::Random {
            train_fraction,
            seed,
        } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            sorted.shuffle(&mut rng);
            let cut = (train_fraction * sorted.len() as f64).round() as usize;
            fold.test = sorted.split_off(cut);
            fold.train = sorted;
        }
        Split::Stratified {
            train_fraction,
            seed,
        } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            for user in sorted.chunk_by_mut(|a, b| a.user == b.user) {
                user.shuffle(&mut rng);
                let cut = (train_fraction * user.len() as f64).round() as usize;
                fold.train.extend_from_slice(&user[..cut]);
                fold.test.extend_from_slice(&user[cut..]);
            }
        }
        Split::Temporal { train_fraction } => {
            for user in sorted.chunk_by_mut(|a, b| a.user == b.user) {
                user.sort_by_key(|r| (r.time, r.item));
                // A user with one rating has nothing to learn from: train only.
                let cut = ((train_fraction * user.len() as f64).round() as usize).max(1);
                fold.train.extend_from_slice(&user[..cut]);
                fold.test.extend_from_slice(&user[cut..]);
            }
        }
        Split::Ml100kFolds => return None,
    }
    Some(fold)
}

/// RMSE and MAE of predictions `(predicted, actual)`.
pub fn rating_errors(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut squared, mut absolute, mut n) = (0.0, 0.0, 0usize);
    for (predicted, actual) in pairs {
        let e = predicted - actual;
        squared += e * e;
        absolute += e.abs();
        n += 1;
    }
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    ((squared / n as f64).sqrt(), absolute / n as f64)
}

/// Top-K quality averaged over the users with at least one test item.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankingMetrics {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    /// Distinct recommended items over the items of the training set.
    pub coverage: f64,
    /// Users the averages are over.
    pub users: usize,
}

/// Scores one user's list: (precision, recall, nDCG, AP), all at `k`.
/// Relevance is binary (the user rated the item in the test set); nDCG
/// discounts a hit at rank r by 1/log2(r + 1) and divides by the ideal for
/// min(|relevant|, k) hits; AP@k divides by min(|relevant|, k).
pub fn user_ranking_scores(
    recommended: &[u64],
    relevant: &HashSet<u64>,
    k: usize,
) -> (f64, f64, f64, f64) {
    if relevant.is_empty() || k == 0 {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let (mut hits, mut dcg, mut precision_sum) = (0usize, 0.0, 0.0);
    for (rank0, item) in recommended.iter().take(k).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            dcg += 1.0 / ((rank0 + 2) as f64).log2();
            precision_sum += hits as f64 / (rank0 + 1) as f64;
        }
    }
    let ideal_hits = relevant.len().min(k);
    let idcg: f64 = (0..ideal_hits).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    (
        hits as f64 / k as f64,
        hits as f64 / relevant.len() as f64,
        dcg / idcg,
        precision_sum / ideal_hits as f64,
    )
}

/// Averages [`user_ranking_scores`] over the users of `relevant`; a user
/// without recommendations scores zero. `catalogue` is the number of items
/// that could have been recommended.
pub fn ranking_metrics(
    recommendations: &HashMap<u64, Vec<u64>>,
    relevant: &HashMap<u64, HashSet<u64>>,
    k: usize,
    catalogue: usize,
) -> RankingMetrics {
    let mut sums = [0.0; 4];
    let mut users = 0usize;
    let empty = Vec::new();
    for (user, items) in relevant {
        if items.is_empty() {
            continue;
        }
        let recs = recommendations.get(user).unwrap_or(&empty);
        let (p, r, n, a) = user_ranking_scores(recs, items, k);
        for (sum, v) in sums.iter_mut().zip([p, r, n, a]) {
            *sum += v;
        }
        users += 1;
    }
    let distinct: HashSet<u64> = recommendations
        .values()
        .flat_map(|v| v.iter().take(k).copied())
        .collect();
    let mean = |s: f64| {
        if users == 0 {
            f64::NAN
        } else {
            s / users as f64
        }
    };
    RankingMetrics {
        precision: mean(sums[0]),
        recall: mean(sums[1]),
        ndcg: mean(sums[2]),
        map: mean(sums[3]),
        coverage: if catalogue == 0 {
            0.0
        } else {
            distinct.len() as f64 / catalogue as f64
        },
        users,
    }
}

/// The `k` best-scored positions of `scores`, best first, skipping
/// `excluded` positions; ties go to the lower position, so lists are stable.
pub fn top_k(scores: &[f64], excluded: &[bool], k: usize) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..scores.len())
        .filter(|&j| !excluded.get(j).copied().unwrap_or(false) && scores[j].is_finite())
        .collect();
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k, better);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(better);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(users: u64, per_user: u64) -> Vec<Interaction> {
        let mut out = Vec::new();
        for u in 1..=users {
            for i in 0..per_user {
                out.push(Interaction {
                    user: u,
                    item: (u * 7 + i * 3) % 50 + 1,
                    rating: ((u + i) % 5 + 1) as f64,
                    time: (1_000 + i * 10 + u) as i64,
                });
            }
        }
        out
    }

    #[test]
    fn splits_parse_and_print_and_bad_ones_name_the_problem() {
        for text in [
            "random:0.9:42",
            "temporal:0.8",
            "stratified:0.75:7",
            "ml100k-folds",
        ] {
            assert_eq!(text.parse::<Split>().unwrap().to_string(), text);
        }
        assert_eq!(
            "temporal".parse::<Split>().unwrap(),
            Split::Temporal {
                train_fraction: 0.9
            }
        );
        let e = "random:1.5:3".parse::<Split>().unwrap_err().to_string();
        assert!(e.contains("`1.5`") && e.contains("between 0 and 1"), "{e}");
        let e = "random:0.9:x".parse::<Split>().unwrap_err().to_string();
        assert!(e.contains("seed `x`"), "{e}");
        let e = "kfold".parse::<Split>().unwrap_err().to_string();
        assert!(
            e.contains("unknown split `kfold`") && e.contains("stratified"),
            "{e}"
        );
    }

    #[test]
    fn splits_partition_the_log_deterministically_and_independently_of_order() {
        let data = log(40, 20);
        for s in [
            Split::Random {
                train_fraction: 0.9,
                seed: 3,
            },
            Split::Stratified {
                train_fraction: 0.75,
                seed: 3,
            },
            Split::Temporal {
                train_fraction: 0.8,
            },
        ] {
            let fold = split(&data, s).unwrap();
            assert_eq!(fold.train.len() + fold.test.len(), data.len(), "{s}");
            let mut reversed = data.clone();
            reversed.reverse();
            assert_eq!(split(&reversed, s).unwrap(), fold, "{s}: order matters");
            let mut all: Vec<_> = fold.train.iter().chain(&fold.test).copied().collect();
            all.sort_by_key(|r| (r.user, r.item, r.time));
            let mut expected = data.clone();
            expected.sort_by_key(|r| (r.user, r.item, r.time));
            assert_eq!(all, expected, "{s}: not a partition");
        }
        let random = split(
            &data,
            Split::Random {
                train_fraction: 0.9,
                seed: 3,
            },
        )
        .unwrap();
        assert_eq!(random.test.len(), 80);
        let other_seed = split(
            &data,
            Split::Random {
                train_fraction: 0.9,
                seed: 4,
            },
        )
        .unwrap();
        assert_ne!(random.test, other_seed.test);
        // Stratified: 15 of 20 per user in training, every user in both.
        let strat = split(
            &data,
            Split::Stratified {
                train_fraction: 0.75,
                seed: 1,
            },
        )
        .unwrap();
        for u in 1..=40 {
            assert_eq!(strat.train.iter().filter(|r| r.user == u).count(), 15);
            assert_eq!(strat.test.iter().filter(|r| r.user == u).count(), 5);
        }
        // Temporal: every test rating is later than all of its user's training ones.
        let temporal = split(
            &data,
            Split::Temporal {
                train_fraction: 0.8,
            },
        )
        .unwrap();
        for t in &temporal.test {
            let latest_train = temporal
                .train
                .iter()
                .filter(|r| r.user == t.user)
                .map(|r| r.time)
                .max()
                .unwrap();
            assert!(t.time > latest_train);
        }
        assert!(split(&data, Split::Ml100kFolds).is_none());
    }

    #[test]
    fn ranking_scores_match_hand_computed_values() {
        let relevant: HashSet<u64> = [1, 3, 9].into_iter().collect();
        // Hits at ranks 1 and 3 of 4.
        let (p, r, n, ap) = user_ranking_scores(&[1, 2, 3, 4], &relevant, 4);
        assert!((p - 0.5).abs() < 1e-12);
        assert!((r - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((n - dcg / idcg).abs() < 1e-12);
        assert!((ap - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        // A perfect list scores one everywhere but precision (3 of k=4).
        let (p, r, n, ap) = user_ranking_scores(&[9, 3, 1, 7], &relevant, 4);
        assert!((p - 0.75).abs() < 1e-12 && r == 1.0 && (n - 1.0).abs() < 1e-12 && ap == 1.0);
        // Nothing relevant recommended.
        assert_eq!(
            user_ranking_scores(&[5, 6], &relevant, 2),
            (0.0, 0.0, 0.0, 0.0)
        );
        // Only the first k count.
        let (p, _, _, _) = user_ranking_scores(&[2, 4, 1], &relevant, 2);
        assert_eq!(p, 0.0);
    }

    #[test]
    fn averages_cover_users_without_recommendations_and_coverage_counts_distinct_items() {
        let recs: HashMap<u64, Vec<u64>> = [(1, vec![10, 11]), (2, vec![10, 12])].into();
        let relevant: HashMap<u64, HashSet<u64>> = [
            (1, [10].into_iter().collect()),
            (2, [12].into_iter().collect()),
            (3, [10].into_iter().collect()),
        ]
        .into();
        let m = ranking_metrics(&recs, &relevant, 2, 6);
        assert_eq!(m.users, 3);
        assert!((m.precision - (0.5 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.coverage - 0.5).abs() < 1e-12);
        let (rmse, mae) = rating_errors([(3.0, 4.0), (5.0, 4.0), (4.0, 4.0)].into_iter());
        assert!((rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((mae - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn top_k_is_best_first_skips_excluded_and_breaks_ties_by_position() {
        let scores = [0.5, 2.0, 2.0, f64::NAN, 1.0, 3.0];
        let excluded = [false, false, false, false, false, true];
        assert_eq!(top_k(&scores, &excluded, 3), vec![1, 2, 4]);
        assert_eq!(top_k(&scores, &excluded, 10), vec![1, 2, 4, 0]);
        assert_eq!(top_k(&scores, &[], 1), vec![5]);
    }
}
