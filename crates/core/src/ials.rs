//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008): the ranking model.
//!
//! Every (user, item) cell is a preference p = 1 if the user rated the item
//! and 0 otherwise, weighted by a confidence c = 1 + α for rated cells and 1
//! for the rest. Minimizing Σ c (p − xᵤ·yᵢ)² + λ(‖x‖² + ‖y‖²) over all
//! cells ranks what a user is likely to watch next, which is what a top-N
//! list is for; explicit rating models rank poorly (see docs/EVALUATION.md).
//! The Gram matrix YᵀY of the fixed side makes each row's solve cost depend
//! on its own ratings only: (YᵀY + α Σᵢ yᵢyᵢᵀ + λI) x = (1 + α) Σᵢ yᵢ.
//! The same solve folds in a user from their current ratings in
//! milliseconds, without retraining.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IalsParams {
    pub rank: usize,
    pub iterations: usize,
    pub lambda: f64,
    /// Confidence of an observed cell over an unobserved one.
    pub alpha: f64,
    pub seed: u64,
}

impl Default for IalsParams {
    fn default() -> Self {
        Self {
            rank: 64,
            iterations: 15,
            lambda: 5.0,
            alpha: 2.0,
            seed: 42,
        }
    }
}

/// A trained model: ids sorted ascending, factors row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IalsModel {
    pub params: IalsParams,
    pub users: Vec<u64>,
    pub items: Vec<u64>,
    /// `users.len() × rank`.
    pub user_factors: Vec<f64>,
    /// `items.len() × rank`.
    pub item_factors: Vec<f64>,
}

/// Column indices of each row (the other side's positions).
struct Rows {
    start: Vec<usize>,
    cols: Vec<u32>,
}

impl Rows {
    fn new(n: usize, pairs: &[(u32, u32)]) -> Self {
        let mut start = vec![0usize; n + 1];
        for &(row, _) in pairs {
            start[row as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut cols = vec![0u32; start[n]];
        for &(row, col) in pairs {
            cols[fill[row as usize]] = col;
            fill[row as usize] += 1;
        }
        Self { start, cols }
    }

    fn row(&self, i: usize) -> &[u32] {
        &self.cols[self.start[i]..self.start[i + 1]]
    }
}

fn gram(factors: &[f64], k: usize) -> DMatrix<f64> {
    // Per-thread partial sums: the Gram matrix is the one dense product.
    let partial = factors
        .par_chunks(k * 1024)
        .map(|block| {
            let mut g = DMatrix::<f64>::zeros(k, k);
            for row in block.chunks_exact(k) {
                let y = DVector::from_column_slice(row);
                g.syger(1.0, &y, &y, 1.0);
            }
            g
        })
        .reduce(|| DMatrix::<f64>::zeros(k, k), |a, b| a + b);
    let mut g = partial;
    g.fill_upper_triangle_with_lower_triangle();
    g
}

/// One row's solve against the fixed side; an empty row gives zeros.
fn solve_row(cols: &[u32], other: &[f64], gram: &DMatrix<f64>, out: &mut [f64], p: &IalsParams) {
    let k = p.rank;
    if cols.is_empty() {
        out.fill(0.0);
        return;
    }
    let mut a = gram.clone();
    let mut b = DVector::<f64>::zeros(k);
    let mut y = DVector::<f64>::zeros(k);
    for &j in cols {
        y.as_mut_slice()
            .copy_from_slice(&other[j as usize * k..(j as usize + 1) * k]);
        a.syger(p.alpha, &y, &y, 1.0);
        b.axpy(1.0 + p.alpha, &y, 1.0);
    }
    a.fill_upper_triangle_with_lower_triangle();
    for d in 0..k {
        a[(d, d)] += p.lambda;
    }
    let x = a
        .cholesky()
        .expect("λ > 0 on the diagonal keeps the system positive definite")
        .solve(&b);
    out.copy_from_slice(x.as_slice());
}

fn half_step(rows: &Rows, other: &[f64], solve: &mut [f64], p: &IalsParams) {
    let g = gram(other, p.rank);
    solve
        .par_chunks_mut(p.rank)
        .enumerate()
        .for_each(|(i, out)| solve_row(rows.row(i), other, &g, out, p));
}

/// Trains on (user, item, rating) triples; only which cells are rated counts.
pub fn train(ratings: &[(u64, u64, f64)], params: &IalsParams) -> IalsModel {
    assert!(params.lambda > 0.0, "λ must be positive");
    let k = params.rank;
    let mut users: Vec<u64> = ratings.iter().map(|r| r.0).collect();
    users.sort_unstable();
    users.dedup();
    let mut items: Vec<u64> = ratings.iter().map(|r| r.1).collect();
    items.sort_unstable();
    items.dedup();
    let index = |ids: &[u64], id: u64| ids.binary_search(&id).expect("indexed above") as u32;
    let mut pairs: Vec<(u32, u32)> = ratings
        .iter()
        .map(|&(u, i, _)| (index(&users, u), index(&items, i)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup(); // a pair rated twice is still one observed cell
    let by_user = Rows::new(users.len(), &pairs);
    let flipped: Vec<(u32, u32)> = pairs.iter().map(|&(u, i)| (i, u)).collect();
    let by_item = Rows::new(items.len(), &flipped);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    let normal = Normal::new(0.0, 0.01).expect("a valid deviation");
    let mut init = |n: usize| -> Vec<f64> { (0..n * k).map(|_| normal.sample(&mut rng)).collect() };
    let mut user_factors = init(users.len());
    let mut item_factors = init(items.len());
    for _ in 0..params.iterations {
        half_step(&by_user, &item_factors, &mut user_factors, params);
        half_step(&by_item, &user_factors, &mut item_factors, params);
    }
    IalsModel {
        params: *params,
        users,
        items,
        user_factors,
        item_factors,
    }
}

impl IalsModel {
    /// The Gram matrix of the item factors, for [`Self::fold_in_with`]:
    /// compute it once per model, not once per request.
    pub fn item_gram(&self) -> DMatrix<f64> {
        gram(&self.item_factors, self.params.rank)
    }

    /// A user vector from the items the user rated (unknown ones skipped).
    pub fn fold_in_with(&self, gram: &DMatrix<f64>, rated: &[u64]) -> Vec<f64> {
        let mut cols: Vec<u32> = rated
            .iter()
            .filter_map(|item| self.items.binary_search(item).ok().map(|j| j as u32))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        let mut out = vec![0.0; self.params.rank];
        solve_row(&cols, &self.item_factors, gram, &mut out, &self.params);
        out
    }

    pub fn user_vector(&self, user: u64) -> Option<&[f64]> {
        let k = self.params.rank;
        let i = self.users.binary_search(&user).ok()?;
        Some(&self.user_factors[i * k..(i + 1) * k])
    }

    /// Preference scores of every item (in `items` order) for a user vector.
    pub fn scores(&self, user_vector: &[f64], out: &mut [f64]) {
        let k = self.params.rank;
        for (score, item) in out.iter_mut().zip(self.item_factors.chunks_exact(k)) {
            *score = user_vector.iter().zip(item).map(|(a, b)| a * b).sum();
        }
    }

    /// Scores for a trained user; `false` for a user the model never saw.
    pub fn score_user(&self, user: u64, out: &mut [f64]) -> bool {
        match self.user_vector(user) {
            Some(v) => {
                self.scores(v, out);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::top_k;

    /// Two taste groups: users 1–40 watch items 1–20, users 41–80 items 21–40;
    /// each user has watched 12 of their group's 20.
    fn two_groups() -> Vec<(u64, u64, f64)> {
        let mut out = Vec::new();
        for u in 1..=80u64 {
            let base = if u <= 40 { 0 } else { 20 };
            for n in 0..12u64 {
                out.push((u, base + (u * 3 + n * 7) % 20 + 1, 4.0));
            }
        }
        out
    }

    #[test]
    fn recommends_unseen_items_of_the_users_own_group_and_is_deterministic() {
        let data = two_groups();
        let params = IalsParams {
            rank: 4,
            iterations: 10,
            lambda: 0.1,
            alpha: 10.0,
            seed: 5,
        };
        let model = train(&data, &params);
        assert_eq!(model, train(&data, &params));
        let mut scores = vec![0.0; model.items.len()];
        for user in [3u64, 55] {
            assert!(model.score_user(user, &mut scores));
            let seen: Vec<bool> = model
                .items
                .iter()
                .map(|i| data.iter().any(|r| r.0 == user && r.1 == *i))
                .collect();
            let top: Vec<u64> = top_k(&scores, &seen, 5)
                .into_iter()
                .map(|j| model.items[j])
                .collect();
            let group = if user <= 40 { 1..=20 } else { 21..=40 };
            assert!(top.iter().all(|i| group.contains(i)), "{user}: {top:?}");
        }
        assert!(!model.score_user(999, &mut scores));
    }

    #[test]
    fn folding_in_a_users_items_reproduces_their_ranking() {
        let data = two_groups();
        let model = train(
            &data,
            &IalsParams {
                rank: 4,
                iterations: 10,
                lambda: 0.1,
                alpha: 10.0,
                seed: 5,
            },
        );
        let gram = model.item_gram();
        let rated: Vec<u64> = data.iter().filter(|r| r.0 == 7).map(|r| r.1).collect();
        let folded = model.fold_in_with(&gram, &rated);
        let (mut a, mut b) = (vec![0.0; model.items.len()], vec![0.0; model.items.len()]);
        model.score_user(7, &mut a);
        model.scores(&folded, &mut b);
        // The trained vector predates the last item step, so the two are
        // close, not equal: same direction, same unseen top 5.
        let trained = model.user_vector(7).unwrap();
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        let cosine = dot(trained, &folded) / (dot(trained, trained) * dot(&folded, &folded)).sqrt();
        assert!(cosine > 0.99, "cosine {cosine}");
        let seen: Vec<bool> = model.items.iter().map(|i| rated.contains(i)).collect();
        let mut top_a = top_k(&a, &seen, 5);
        let mut top_b = top_k(&b, &seen, 5);
        top_a.sort_unstable();
        top_b.sort_unstable();
        assert_eq!(top_a, top_b);
        // A brand-new user who rated items of the second group gets that group.
        let newcomer = model.fold_in_with(&gram, &[22, 25, 31]);
        model.scores(&newcomer, &mut b);
        let seen: Vec<bool> = model
            .items
            .iter()
            .map(|i| [22, 25, 31].contains(i))
            .collect();
        let top: Vec<u64> = top_k(&b, &seen, 5)
            .into_iter()
            .map(|j| model.items[j])
            .collect();
        assert!(top.iter().all(|i| (21..=40).contains(i)), "{top:?}");
    }
}
