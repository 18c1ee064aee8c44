//! Matrix factorization for explicit ratings by alternating least squares,
//! with user and item biases: r̂(u, i) = μ + b_u + b_i + p_u·q_i.
//!
//! Each half-step holds one side fixed and solves, for every user (or item)
//! independently, a ridge regression of its residual ratings on the other
//! side's factors, augmented with a constant 1 so the bias is solved with
//! the factors: `(YᵀY + λ·n·I) x = Yᵀr`, with λ scaled by the row's rating
//! count (weighted-λ regularization, Zhou et al. 2008). Rows are solved in
//! parallel (rayon); the result depends only on the data and the seed.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsParams {
    pub rank: usize,
    pub iterations: usize,
    /// λ: regularization of the factors, per rating of the row.
    pub lambda: f64,
    /// Regularization of the biases, per rating of the row.
    pub bias_lambda: f64,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            rank: 32,
            iterations: 15,
            lambda: 0.12,
            bias_lambda: 0.12,
            seed: 42,
        }
    }
}

/// A trained model: ids sorted ascending, factors row-major with the bias last.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    pub params: AlsParams,
    pub rank: usize,
    pub global_mean: f64,
    pub users: Vec<u64>,
    pub items: Vec<u64>,
    /// `users.len() × (rank + 1)`: p_u then b_u.
    pub user_factors: Vec<f64>,
    /// `items.len() × (rank + 1)`: q_i then b_i.
    pub item_factors: Vec<f64>,
}

/// Ratings of one side grouped by row: (other side's index, rating).
struct Rows {
    start: Vec<usize>,
    entries: Vec<(u32, f64)>,
}

impl Rows {
    fn new(n: usize, pairs: impl Iterator<Item = (u32, u32, f64)> + Clone) -> Self {
        let mut start = vec![0usize; n + 1];
        for (row, _, _) in pairs.clone() {
            start[row as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut entries = vec![(0u32, 0.0); start[n]];
        for (row, col, r) in pairs {
            entries[fill[row as usize]] = (col, r);
            fill[row as usize] += 1;
        }
        Self { start, entries }
    }

    fn row(&self, i: usize) -> &[(u32, f64)] {
        &self.entries[self.start[i]..self.start[i + 1]]
    }
}

/// Solves one row against the fixed `other` factors: the fixed side's bias
/// is subtracted from each rating, the solved side's comes out as the last
/// entry of `out`. An empty row solves to zeros (no evidence, no deviation).
fn solve_row(
    row: &[(u32, f64)],
    other: &[f64],
    out: &mut [f64],
    k: usize,
    params: &AlsParams,
    mean: f64,
) {
    if row.is_empty() {
        out.fill(0.0);
        return;
    }
    let width = k + 1;
    let mut a = DMatrix::<f64>::zeros(width, width);
    let mut b = DVector::<f64>::zeros(width);
    let mut y = DVector::<f64>::zeros(width);
    for &(j, r) in row {
        let f = &other[j as usize * width..(j as usize + 1) * width];
        // y = [factors of j, 1]; the target leaves out j's own bias.
        y.as_mut_slice()[..k].copy_from_slice(&f[..k]);
        y[k] = 1.0;
        let target = r - mean - f[k];
        a.syger(1.0, &y, &y, 1.0);
        b.axpy(target, &y, 1.0);
    }
    a.fill_upper_triangle_with_lower_triangle(); // syger writes the lower half
    let n = row.len() as f64;
    for d in 0..k {
        a[(d, d)] += params.lambda * n;
    }
    a[(k, k)] += params.bias_lambda * n;
    let x = a
        .cholesky()
        .expect("λ·n on the diagonal makes the system positive definite")
        .solve(&b);
    out.copy_from_slice(x.as_slice());
}

/// Solves every row of `solve` against the fixed `other` factors, in parallel.
fn half_step(
    rows: &Rows,
    other: &[f64],
    solve: &mut [f64],
    k: usize,
    params: &AlsParams,
    mean: f64,
) {
    solve
        .par_chunks_mut(k + 1)
        .enumerate()
        .for_each(|(i, out)| solve_row(rows.row(i), other, out, k, params, mean));
}

/// Trains on (user, item, rating) triples.
pub fn train(ratings: &[(u64, u64, f64)], params: &AlsParams) -> AlsModel {
    let k = params.rank;
    let width = k + 1;
    let mut users: Vec<u64> = ratings.iter().map(|r| r.0).collect();
    users.sort_unstable();
    users.dedup();
    let mut items: Vec<u64> = ratings.iter().map(|r| r.1).collect();
    items.sort_unstable();
    items.dedup();
    let index = |ids: &[u64], id: u64| ids.binary_search(&id).expect("indexed above") as u32;
    let triples: Vec<(u32, u32, f64)> = ratings
        .iter()
        .map(|&(u, i, r)| (index(&users, u), index(&items, i), r))
        .collect();
    let global_mean = if ratings.is_empty() {
        0.0
    } else {
        ratings.iter().map(|r| r.2).sum::<f64>() / ratings.len() as f64
    };
    let by_user = Rows::new(users.len(), triples.iter().map(|&(u, i, r)| (u, i, r)));
    let by_item = Rows::new(items.len(), triples.iter().map(|&(u, i, r)| (i, u, r)));

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    let normal = Normal::new(0.0, 0.1).expect("a valid deviation");
    let mut init = |n: usize| -> Vec<f64> {
        let mut v: Vec<f64> = (0..n * width).map(|_| normal.sample(&mut rng)).collect();
        for row in v.chunks_mut(width) {
            row[k] = 0.0; // biases start at zero
        }
        v
    };
    let mut user_factors = init(users.len());
    let mut item_factors = init(items.len());
    for _ in 0..params.iterations {
        half_step(
            &by_user,
            &item_factors,
            &mut user_factors,
            k,
            params,
            global_mean,
        );
        half_step(
            &by_item,
            &user_factors,
            &mut item_factors,
            k,
            params,
            global_mean,
        );
    }
    AlsModel {
        params: *params,
        rank: k,
        global_mean,
        users,
        items,
        user_factors,
        item_factors,
    }
}

impl AlsModel {
    /// The predicted rating, clamped to 0.5–5; the global mean plus whatever
    /// biases are known for a user or item never seen in training.
    pub fn predict(&self, user: u64, item: u64) -> f64 {
        let width = self.rank + 1;
        let u = self
            .users
            .binary_search(&user)
            .ok()
            .map(|i| &self.user_factors[i * width..(i + 1) * width]);
        let i = self
            .items
            .binary_search(&item)
            .ok()
            .map(|j| &self.item_factors[j * width..(j + 1) * width]);
        let mut score = self.global_mean;
        if let Some(u) = u {
            score += u[self.rank];
        }
        if let Some(i) = i {
            score += i[self.rank];
        }
        if let (Some(u), Some(i)) = (u, i) {
            score += u[..self.rank]
                .iter()
                .zip(&i[..self.rank])
                .map(|(a, b)| a * b)
                .sum::<f64>();
        }
        score.clamp(0.5, 5.0)
    }

    /// A user vector (factors then bias) from that user's ratings alone, the
    /// items' side held fixed: the same solve as a training half-step, so a
    /// user's new ratings count without retraining. Unknown items are skipped.
    pub fn fold_in(&self, ratings: &[(u64, f64)]) -> Vec<f64> {
        let row: Vec<(u32, f64)> = ratings
            .iter()
            .filter_map(|&(item, r)| self.items.binary_search(&item).ok().map(|j| (j as u32, r)))
            .collect();
        let mut out = vec![0.0; self.rank + 1];
        solve_row(
            &row,
            &self.item_factors,
            &mut out,
            self.rank,
            &self.params,
            self.global_mean,
        );
        out
    }

    /// The trained vector of a user, if the user was in the training data.
    pub fn user_vector(&self, user: u64) -> Option<&[f64]> {
        let width = self.rank + 1;
        let i = self.users.binary_search(&user).ok()?;
        Some(&self.user_factors[i * width..(i + 1) * width])
    }

    /// Predicted ratings of every item (in `items` order) for a user vector
    /// from [`Self::user_vector`] or [`Self::fold_in`], unclamped: ranking
    /// needs the order, not the rating scale.
    pub fn scores(&self, user_vector: &[f64], out: &mut [f64]) {
        let width = self.rank + 1;
        let k = self.rank;
        for (score, item) in out.iter_mut().zip(self.item_factors.chunks_exact(width)) {
            let dot: f64 = user_vector[..k]
                .iter()
                .zip(&item[..k])
                .map(|(a, b)| a * b)
                .sum();
            *score = self.global_mean + user_vector[k] + item[k] + dot;
        }
    }

    /// Root mean squared error over (user, item, rating) triples.
    pub fn rmse(&self, test: &[(u64, u64, f64)]) -> f64 {
        if test.is_empty() {
            return 0.0;
        }
        let sum: f64 = test
            .iter()
            .map(|&(u, i, r)| (self.predict(u, i) - r).powi(2))
            .sum();
        (sum / test.len() as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Ratings from a known rank-3 model with biases plus noise.
    fn low_rank(
        seed: u64,
        users: u64,
        items: u64,
        per_user: usize,
        noise: f64,
    ) -> Vec<(u64, u64, f64)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let factor = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f64> {
            (0..3).map(|_| normal.sample(rng) * 0.5).collect()
        };
        let p: Vec<Vec<f64>> = (0..users).map(|_| factor(&mut rng)).collect();
        let q: Vec<Vec<f64>> = (0..items).map(|_| factor(&mut rng)).collect();
        let bu: Vec<f64> = (0..users).map(|_| normal.sample(&mut rng) * 0.3).collect();
        let bi: Vec<f64> = (0..items).map(|_| normal.sample(&mut rng) * 0.3).collect();
        let mut out = Vec::new();
        for u in 0..users {
            for _ in 0..per_user {
                let i = rng.random_range(0..items);
                let dot: f64 = p[u as usize]
                    .iter()
                    .zip(&q[i as usize])
                    .map(|(a, b)| a * b)
                    .sum();
                let r =
                    3.5 + bu[u as usize] + bi[i as usize] + dot + normal.sample(&mut rng) * noise;
                out.push((u + 1, i + 1, r));
            }
        }
        out
    }

    #[test]
    fn recovers_a_low_rank_model_to_the_noise_level_and_beats_the_mean() {
        let all = low_rank(7, 300, 200, 60, 0.2);
        // Every tenth rating held out: each user and item is in both sets.
        let (test_set, train_set): (Vec<_>, Vec<_>) =
            all.iter().enumerate().partition(|(n, _)| n % 10 == 0);
        let strip = |v: Vec<(usize, &(u64, u64, f64))>| -> Vec<(u64, u64, f64)> {
            v.into_iter().map(|(_, t)| *t).collect()
        };
        let (train_set, test_set) = (strip(train_set), strip(test_set));
        let params = AlsParams {
            rank: 8,
            iterations: 12,
            lambda: 0.02,
            bias_lambda: 0.02,
            seed: 1,
        };
        let model = train(&train_set, &params);
        let rmse = model.rmse(&test_set);
        let mean = model.global_mean;
        let baseline = (test_set.iter().map(|t| (t.2 - mean).powi(2)).sum::<f64>()
            / test_set.len() as f64)
            .sqrt();
        assert!(rmse < 0.35, "test RMSE {rmse} (noise 0.2)");
        assert!(
            rmse < baseline * 0.5,
            "{rmse} vs the global mean's {baseline}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_model_and_unknowns_fall_back() {
        let data = low_rank(3, 50, 40, 20, 0.1);
        let params = AlsParams {
            rank: 4,
            iterations: 3,
            lambda: 0.05,
            bias_lambda: 0.05,
            seed: 9,
        };
        assert_eq!(train(&data, &params), train(&data, &params));
        let model = train(&data, &params);
        assert_eq!(
            model.predict(10_000, 20_000),
            model.global_mean.clamp(0.5, 5.0)
        );
        let item_bias_only = model.predict(10_000, 1);
        let j = model.items.binary_search(&1).unwrap();
        let b_i = model.item_factors[j * 5 + 4];
        assert!((item_bias_only - (model.global_mean + b_i).clamp(0.5, 5.0)).abs() < 1e-12);
        assert!(train(&[], &params).users.is_empty());
    }
}
