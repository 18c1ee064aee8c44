//! The baselines every model is judged against: the global mean, user and
//! item biases, and popularity (the fallback for users a model cannot know).

use std::collections::HashMap;

/// r̂(u, i) = μ + b_u + b_i, biases shrunk towards zero by their own
/// regularization (as Surprise's `BaselineOnly` with ALS: 10 rounds,
/// λ_u = 15, λ_i = 10), so an item with two ratings barely moves.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasModel {
    pub global_mean: f64,
    pub user_bias: HashMap<u64, f64>,
    pub item_bias: HashMap<u64, f64>,
}

const USER_REG: f64 = 15.0;
const ITEM_REG: f64 = 10.0;
const ROUNDS: usize = 10;

impl BiasModel {
    pub fn train(ratings: &[(u64, u64, f64)]) -> Self {
        let global_mean = mean(ratings);
        let mut user_bias: HashMap<u64, f64> = HashMap::new();
        let mut item_bias: HashMap<u64, f64> = HashMap::new();
        for _ in 0..ROUNDS {
            let mut sums: HashMap<u64, (f64, f64)> = HashMap::new();
            for &(u, i, r) in ratings {
                let s = sums.entry(i).or_default();
                s.0 += r - global_mean - user_bias.get(&u).copied().unwrap_or(0.0);
                s.1 += 1.0;
            }
            item_bias = sums
                .into_iter()
                .map(|(i, (sum, n))| (i, sum / (n + ITEM_REG)))
                .collect();
            let mut sums: HashMap<u64, (f64, f64)> = HashMap::new();
            for &(u, i, r) in ratings {
                let s = sums.entry(u).or_default();
                s.0 += r - global_mean - item_bias.get(&i).copied().unwrap_or(0.0);
                s.1 += 1.0;
            }
            user_bias = sums
                .into_iter()
                .map(|(u, (sum, n))| (u, sum / (n + USER_REG)))
                .collect();
        }
        Self {
            global_mean,
            user_bias,
            item_bias,
        }
    }

    /// Clamped to the rating scale, 0.5–5.
    pub fn predict(&self, user: u64, item: u64) -> f64 {
        (self.global_mean
            + self.user_bias.get(&user).copied().unwrap_or(0.0)
            + self.item_bias.get(&item).copied().unwrap_or(0.0))
        .clamp(0.5, 5.0)
    }
}

/// The mean rating, 0 for no ratings.
pub fn mean(ratings: &[(u64, u64, f64)]) -> f64 {
    if ratings.is_empty() {
        0.0
    } else {
        ratings.iter().map(|r| r.2).sum::<f64>() / ratings.len() as f64
    }
}

/// Items ranked by how many ratings they have, the most first (ties: lower
/// id first): what everyone gets when nothing is known about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popularity {
    /// `(item, ratings)`, most rated first.
    pub ranked: Vec<(u64, u64)>,
}

impl Popularity {
    pub fn train(ratings: &[(u64, u64, f64)]) -> Self {
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for &(_, i, _) in ratings {
            *counts.entry(i).or_default() += 1;
        }
        let mut ranked: Vec<(u64, u64)> = counts.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Self { ranked }
    }

    /// The `k` most popular items not in `exclude`.
    pub fn top(&self, k: usize, exclude: impl Fn(u64) -> bool) -> Vec<u64> {
        self.ranked
            .iter()
            .map(|&(item, _)| item)
            .filter(|&item| !exclude(item))
            .take(k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biases_are_shrunk_and_follow_the_data() {
        let mut ratings = Vec::new();
        // Item 1 loved by everyone, item 2 disliked, user 9 rates everything low.
        for u in 1..=30 {
            ratings.push((u, 1, 5.0));
            ratings.push((u, 2, 2.0));
        }
        ratings.push((9, 3, 1.0));
        let model = BiasModel::train(&ratings);
        assert!(model.item_bias[&1] > 1.0 && model.item_bias[&2] < -1.0);
        // One rating barely moves item 3: shrinkage.
        assert!(model.item_bias[&3].abs() < 0.3, "{}", model.item_bias[&3]);
        assert!(model.predict(1, 1) > model.predict(1, 2));
        assert_eq!(model.predict(999, 999), model.global_mean);
        assert_eq!(BiasModel::train(&[]).predict(1, 1), 0.5);
    }

    #[test]
    fn popularity_ranks_by_count_then_id_and_excludes() {
        let ratings = [
            (1, 5, 3.0),
            (2, 5, 1.0),
            (1, 7, 4.0),
            (3, 7, 2.0),
            (3, 6, 5.0),
        ];
        let pop = Popularity::train(&ratings);
        assert_eq!(pop.ranked, vec![(5, 2), (7, 2), (6, 1)]);
        assert_eq!(pop.top(2, |i| i == 5), vec![7, 6]);
    }
}
