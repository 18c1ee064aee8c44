//! The baselines every model is judged against: the global mean, user and
//! item biases, and popularity (the fallback for users a model cannot know).

use rayon::prelude::*;
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
        // Dense indices once, so each round is two passes over flat arrays
        // (a hash lookup per rating made ML-25M take minutes).
        let dense = |ids: &mut Vec<u64>| {
            ids.sort_unstable();
            ids.dedup();
        };
        let mut users: Vec<u64> = ratings.iter().map(|r| r.0).collect();
        dense(&mut users);
        let mut items: Vec<u64> = ratings.iter().map(|r| r.1).collect();
        dense(&mut items);
        let index: Vec<(u32, u32)> = ratings
            .par_iter()
            .map(|&(u, i, _)| {
                (
                    users.binary_search(&u).expect("indexed") as u32,
                    items.binary_search(&i).expect("indexed") as u32,
                )
            })
            .collect();
        let mut user_bias = vec![0.0; users.len()];
        let mut item_bias = vec![0.0; items.len()];
        let (mut user_n, mut item_n) = (vec![0.0f64; users.len()], vec![0.0f64; items.len()]);
        for &(u, i) in &index {
            user_n[u as usize] += 1.0;
            item_n[i as usize] += 1.0;
        }
        for _ in 0..ROUNDS {
            let mut sums = vec![0.0; items.len()];
            for (&(u, i), r) in index.iter().zip(ratings) {
                sums[i as usize] += r.2 - global_mean - user_bias[u as usize];
            }
            for ((b, s), n) in item_bias.iter_mut().zip(&sums).zip(&item_n) {
                *b = s / (n + ITEM_REG);
            }
            let mut sums = vec![0.0; users.len()];
            for (&(u, i), r) in index.iter().zip(ratings) {
                sums[u as usize] += r.2 - global_mean - item_bias[i as usize];
            }
            for ((b, s), n) in user_bias.iter_mut().zip(&sums).zip(&user_n) {
                *b = s / (n + USER_REG);
            }
        }
        Self {
            global_mean,
            user_bias: users.into_iter().zip(user_bias).collect(),
            item_bias: items.into_iter().zip(item_bias).collect(),
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
