//! Matrix factorization for explicit ratings by alternating least squares,
//! with user and item biases: r̂(u, i) = μ + b_u + b_i + p_u·q_i.
//!
//! Each half-step holds one side fixed and solves, for every user (or item)
//! independently, a ridge regression of its residual ratings on the other
//! side's factors, augmented with a constant 1 so the bias is solved with
//! the factors: `(YᵀY + λ·n·I) x = Yᵀr`, with λ scaled by the row's rating
//! count (weighted-λ regularization, Zhou et al. 2008).
//!
//! Two solvers ([`AlsSolver`]): the exact one builds each row's
//! (k+1)×(k+1) system and factors it (O(n·k² + k³) per row of n ratings);
//! the default runs a few conjugate-gradient steps per row, warm-started
//! from the row's previous value, applying the system as Σ y (y·p) + λ·n·p
//! without forming it (O(steps·n·k) per row; Takács et al. 2011, as the
//! `implicit` library does for implicit feedback). At rank 64 that is what
//! makes a 25M-rating iteration take seconds (docs/BENCHMARKS.md), and on
//! MovieLens-100K it matches the exact solver's test RMSE.
//!
//! Rows are solved in parallel (rayon), each by one thread in a fixed order,
//! so the result depends only on the data, the parameters and the seed, not
//! on the number of threads.

use crate::linalg::{cholesky_solve, dot};
use nalgebra::{DMatrixView, DMatrixViewMut};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use std::time::Instant;

/// How each row's regularized least-squares system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlsSolver {
    /// Exact: the row's normal equations built and Cholesky-factored,
    /// O(n·k² + k³) for a row of n ratings.
    Cholesky,
    /// `steps` conjugate-gradient steps per row and half-step, warm-started
    /// from the row's current value: O((steps + 1)·n·k). Across iterations
    /// the warm start carries the solve on, so a few steps suffice.
    ConjugateGradient { steps: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsParams {
    pub rank: usize,
    pub iterations: usize,
    /// λ: regularization of the factors, per rating of the row.
    pub lambda: f64,
    /// Regularization of the biases, per rating of the row.
    pub bias_lambda: f64,
    pub seed: u64,
    pub solver: AlsSolver,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            rank: 32,
            iterations: 15,
            lambda: 0.12,
            bias_lambda: 0.12,
            seed: 42,
            solver: AlsSolver::ConjugateGradient { steps: 3 },
        }
    }
}

/// A trained model: ids sorted ascending, factors row-major with the bias last.
#[derive(Debug, Clone)]
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
    /// Wall seconds of each iteration (both half-steps), in order: what
    /// training took beyond indexing the ratings.
    pub iteration_seconds: Vec<f64>,
}

/// Models are equal when they predict the same: the timings are left out.
impl PartialEq for AlsModel {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params
            && self.rank == other.rank
            && self.global_mean == other.global_mean
            && self.users == other.users
            && self.items == other.items
            && self.user_factors == other.user_factors
            && self.item_factors == other.item_factors
    }
}

/// Ratings of one side grouped by row: the other side's index and the
/// rating, in two arrays (half-star ratings are exact in f32).
struct Rows {
    start: Vec<usize>,
    cols: Vec<u32>,
    values: Vec<f32>,
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
        let mut cols = vec![0u32; start[n]];
        let mut values = vec![0f32; start[n]];
        for (row, col, r) in pairs {
            let at = &mut fill[row as usize];
            cols[*at] = col;
            values[*at] = r as f32;
            *at += 1;
        }
        Self {
            start,
            cols,
            values,
        }
    }

    fn row(&self, i: usize) -> Row<'_> {
        let range = self.start[i]..self.start[i + 1];
        Row {
            cols: &self.cols[range.clone()],
            values: &self.values[range],
        }
    }
}

#[derive(Clone, Copy)]
struct Row<'a> {
    cols: &'a [u32],
    values: &'a [f32],
}

impl Row<'_> {
    fn len(&self) -> usize {
        self.cols.len()
    }

    fn iter(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.cols
            .iter()
            .zip(self.values)
            .map(|(&j, &r)| (j as usize, r as f64))
    }
}

/// out += w · y.
#[inline]
fn axpy(w: f64, y: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(y) {
        *o += w * v;
    }
}

/// Rows at least this long build their system by blocked matrix products.
const GEMM_MIN_ROWS: usize = 32;
const GEMM_BLOCK: usize = 256;

/// Per-thread buffers, overwritten by every row.
struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    /// Gathered rows of the other side.
    g: Vec<f64>,
    /// The row's targets: rating − μ − the other side's bias.
    t: Vec<f64>,
}

impl Scratch {
    fn new(width: usize) -> Self {
        Self {
            a: vec![0.0; width * width],
            b: vec![0.0; width],
            r: vec![0.0; width],
            p: vec![0.0; width],
            ap: vec![0.0; width],
            g: Vec::new(),
            t: Vec::new(),
        }
    }
}

/// The row's regularization: λ·n on the factors, λ_b·n on the bias.
fn ridge(params: &AlsParams, n: usize) -> (f64, f64) {
    (params.lambda * n as f64, params.bias_lambda * n as f64)
}

/// Exact solve of one row against the fixed `other` factors: the fixed
/// side's bias is subtracted from each rating, the solved side's comes out
/// as the last entry of `x`.
fn solve_row_exact(
    row: Row<'_>,
    other: &[f64],
    x: &mut [f64],
    k: usize,
    params: &AlsParams,
    mean: f64,
    s: &mut Scratch,
) {
    let w = k + 1;
    s.a.fill(0.0);
    s.b.fill(0.0);
    if row.len() >= GEMM_MIN_ROWS {
        // A += GᵀG over blocks of gathered rows y_j = [q_j, 1].
        let cols: Vec<(usize, f64)> = row.iter().collect();
        for block in cols.chunks(GEMM_BLOCK) {
            s.g.clear();
            for &(j, r) in block {
                let f = &other[j * w..j * w + w];
                let target = r - mean - f[k];
                axpy(target, &f[..k], &mut s.b[..k]);
                s.b[k] += target;
                s.g.extend_from_slice(&f[..k]);
                s.g.push(1.0);
            }
            let n = block.len();
            let g = DMatrixView::from_slice_with_strides(&s.g, n, w, w, 1);
            let gt = DMatrixView::from_slice_with_strides(&s.g, w, n, 1, w);
            DMatrixViewMut::from_slice(&mut s.a, w, w).gemm(1.0, &gt, &g, 1.0);
        }
    } else {
        for (j, r) in row.iter() {
            let f = &other[j * w..j * w + w];
            let target = r - mean - f[k];
            for p in 0..w {
                let yp = if p < k { f[p] } else { 1.0 };
                s.b[p] += target * yp;
                let lower = &mut s.a[p * w..p * w + p + 1];
                let (head, last) = if p < k {
                    (lower, None)
                } else {
                    let (h, l) = lower.split_at_mut(k);
                    (h, Some(l))
                };
                axpy(yp, &f[..head.len()], head);
                if let Some(l) = last {
                    l[0] += 1.0;
                }
            }
        }
    }
    let (lambda_n, bias_n) = ridge(params, row.len());
    for d in 0..k {
        s.a[d * w + d] += lambda_n;
    }
    s.a[k * w + k] += bias_n;
    let b = std::mem::take(&mut s.b);
    cholesky_solve(&mut s.a, &b, x, w);
    s.b = b;
}

/// A·v = Σ_j y_j (y_j·v) + diag(λ·n, …, λ_b·n)·v, with y_j = [q_j, 1] and
/// the q_j gathered row after row in `g`.
fn apply_system(g: &[f64], k: usize, ridge: (f64, f64), v: &[f64], out: &mut [f64]) {
    for (o, &vq) in out[..k].iter_mut().zip(&v[..k]) {
        *o = ridge.0 * vq;
    }
    out[k] = ridge.1 * v[k];
    let mut bias_sum = 0.0;
    for q in g.chunks_exact(k) {
        let yv = dot(q, &v[..k]) + v[k];
        axpy(yv, q, &mut out[..k]);
        bias_sum += yv;
    }
    out[k] += bias_sum;
}

/// `steps` conjugate-gradient steps on the row's system from the current `x`.
#[allow(clippy::too_many_arguments)] // the hot loop's inputs, kept flat on purpose
fn solve_row_cg(
    row: Row<'_>,
    other: &[f64],
    x: &mut [f64],
    k: usize,
    params: &AlsParams,
    mean: f64,
    steps: usize,
    s: &mut Scratch,
) {
    let w = k + 1;
    let ridge = ridge(params, row.len());
    // The other side's rows, gathered once: every pass below reads them
    // from cache instead of from all over the factor matrix.
    s.g.clear();
    s.t.clear();
    for (j, rating) in row.iter() {
        let f = &other[j * w..j * w + w];
        s.g.extend_from_slice(&f[..k]);
        s.t.push(rating - mean - f[k]);
    }
    // r = b − A x in one pass: Σ y_j (target_j − y_j·x) − D x.
    for (r, &xq) in s.r[..k].iter_mut().zip(&x[..k]) {
        *r = -ridge.0 * xq;
    }
    s.r[k] = -ridge.1 * x[k];
    let mut bias_sum = 0.0;
    for (q, &t) in s.g.chunks_exact(k).zip(&s.t) {
        let e = t - (dot(q, &x[..k]) + x[k]);
        axpy(e, q, &mut s.r[..k]);
        bias_sum += e;
    }
    s.r[k] += bias_sum;
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply_system(&s.g, k, ridge, &s.p, &mut s.ap);
        let curvature = dot(&s.p, &s.ap);
        if curvature <= 0.0 {
            break;
        }
        let alpha = rs_old / curvature;
        for (((xq, rq), &pq), &apq) in x.iter_mut().zip(&mut s.r).zip(&s.p).zip(&s.ap) {
            *xq += alpha * pq;
            *rq -= alpha * apq;
        }
        let rs_new = dot(&s.r, &s.r);
        let beta = rs_new / rs_old;
        for (pq, &rq) in s.p.iter_mut().zip(&s.r) {
            *pq = rq + beta * *pq;
        }
        rs_old = rs_new;
    }
}

/// Solves one row with the configured solver; an empty row solves to zeros
/// (no evidence, no deviation).
#[allow(clippy::too_many_arguments)]
fn solve_row(
    row: Row<'_>,
    other: &[f64],
    x: &mut [f64],
    k: usize,
    params: &AlsParams,
    mean: f64,
    solver: AlsSolver,
    s: &mut Scratch,
) {
    if row.len() == 0 {
        x.fill(0.0);
        return;
    }
    match solver {
        AlsSolver::Cholesky => solve_row_exact(row, other, x, k, params, mean, s),
        AlsSolver::ConjugateGradient { steps } => {
            solve_row_cg(row, other, x, k, params, mean, steps, s)
        }
    }
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
    solve.par_chunks_mut(k + 1).enumerate().for_each_init(
        || Scratch::new(k + 1),
        |s, (i, out)| solve_row(rows.row(i), other, out, k, params, mean, params.solver, s),
    );
}

/// Trains on (user, item, rating) triples.
pub fn train(ratings: &[(u64, u64, f64)], params: &AlsParams) -> AlsModel {
    let k = params.rank;
    let width = k + 1;
    let mut users: Vec<u64> = ratings.par_iter().map(|r| r.0).collect();
    users.par_sort_unstable();
    users.dedup();
    let mut items: Vec<u64> = ratings.par_iter().map(|r| r.1).collect();
    items.par_sort_unstable();
    items.dedup();
    let index = |ids: &[u64], id: u64| ids.binary_search(&id).expect("indexed above") as u32;
    let triples: Vec<(u32, u32, f64)> = ratings
        .par_iter()
        .map(|&(u, i, r)| (index(&users, u), index(&items, i), r))
        .collect();
    let global_mean = if ratings.is_empty() {
        0.0
    } else {
        ratings.iter().map(|r| r.2).sum::<f64>() / ratings.len() as f64
    };
    let by_user = Rows::new(users.len(), triples.iter().map(|&(u, i, r)| (u, i, r)));
    let by_item = Rows::new(items.len(), triples.iter().map(|&(u, i, r)| (i, u, r)));
    drop(triples);

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
    let mut iteration_seconds = Vec::with_capacity(params.iterations);
    for _ in 0..params.iterations {
        let clock = Instant::now();
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
        iteration_seconds.push(clock.elapsed().as_secs_f64());
    }
    AlsModel {
        params: *params,
        rank: k,
        global_mean,
        users,
        items,
        user_factors,
        item_factors,
        iteration_seconds,
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
    /// items' side held fixed: a training half-step's solve, exact whatever
    /// the training solver, so a user's new ratings count without
    /// retraining. Unknown items are skipped.
    pub fn fold_in(&self, ratings: &[(u64, f64)]) -> Vec<f64> {
        let (cols, values): (Vec<u32>, Vec<f32>) = ratings
            .iter()
            .filter_map(|&(item, r)| {
                self.items
                    .binary_search(&item)
                    .ok()
                    .map(|j| (j as u32, r as f32))
            })
            .unzip();
        let mut out = vec![0.0; self.rank + 1];
        solve_row(
            Row {
                cols: &cols,
                values: &values,
            },
            &self.item_factors,
            &mut out,
            self.rank,
            &self.params,
            self.global_mean,
            AlsSolver::Cholesky,
            &mut Scratch::new(self.rank + 1),
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
        let mean = train_set.iter().map(|t| t.2).sum::<f64>() / train_set.len() as f64;
        let baseline = (test_set.iter().map(|t| (t.2 - mean).powi(2)).sum::<f64>()
            / test_set.len() as f64)
            .sqrt();
        for solver in [
            AlsSolver::Cholesky,
            AlsSolver::ConjugateGradient { steps: 3 },
        ] {
            let params = AlsParams {
                rank: 8,
                iterations: 12,
                lambda: 0.02,
                bias_lambda: 0.02,
                seed: 1,
                solver,
            };
            let model = train(&train_set, &params);
            let rmse = model.rmse(&test_set);
            assert!(rmse < 0.35, "{solver:?}: test RMSE {rmse} (noise 0.2)");
            assert!(
                rmse < baseline * 0.5,
                "{solver:?}: {rmse} vs the global mean's {baseline}"
            );
            assert_eq!(model.iteration_seconds.len(), 12);
            assert!(model.iteration_seconds.iter().all(|s| *s >= 0.0));
        }
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
            solver: AlsSolver::ConjugateGradient { steps: 3 },
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

    #[test]
    fn the_result_does_not_depend_on_the_number_of_threads() {
        // Long rows too, so the exact solver's blocked path runs.
        let data = low_rank(5, 120, 80, 50, 0.1);
        for solver in [
            AlsSolver::Cholesky,
            AlsSolver::ConjugateGradient { steps: 3 },
        ] {
            let params = AlsParams {
                rank: 6,
                iterations: 4,
                solver,
                ..AlsParams::default()
            };
            let with = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| train(&data, &params))
            };
            let one = with(1);
            assert_eq!(one, with(3), "{solver:?}");
            assert_eq!(one.user_factors, with(2).user_factors, "{solver:?}");
        }
    }

    #[test]
    fn conjugate_gradient_reaches_the_exact_solution_and_fold_in_is_exact() {
        let data = low_rank(11, 60, 90, 70, 0.3);
        let exact = AlsParams {
            rank: 5,
            iterations: 6,
            solver: AlsSolver::Cholesky,
            ..AlsParams::default()
        };
        let model = train(&data, &exact);
        // Refit user 1 against the final items: the exact solve, and CG
        // from zero with as many steps as unknowns (exact in exact arithmetic).
        let ratings: Vec<(u64, f64)> = data
            .iter()
            .filter(|r| r.0 == 1)
            .map(|r| (r.1, r.2))
            .collect();
        assert!(
            ratings.len() >= GEMM_MIN_ROWS,
            "the blocked path is covered"
        );
        let folded = model.fold_in(&ratings);
        let (cols, values): (Vec<u32>, Vec<f32>) = ratings
            .iter()
            .map(|&(i, r)| (model.items.binary_search(&i).unwrap() as u32, r as f32))
            .unzip();
        let row = Row {
            cols: &cols,
            values: &values,
        };
        let mut s = Scratch::new(6);
        let mut cg = vec![0.0; 6];
        solve_row_cg(
            row,
            &model.item_factors,
            &mut cg,
            5,
            &exact,
            model.global_mean,
            12,
            &mut s,
        );
        let mut short = vec![0.0; 6];
        solve_row_exact(
            Row {
                cols: &cols[..10],
                values: &values[..10],
            },
            &model.item_factors,
            &mut short,
            5,
            &exact,
            model.global_mean,
            &mut s,
        );
        let mut short_cg = vec![0.0; 6];
        solve_row_cg(
            Row {
                cols: &cols[..10],
                values: &values[..10],
            },
            &model.item_factors,
            &mut short_cg,
            5,
            &exact,
            model.global_mean,
            12,
            &mut s,
        );
        for d in 0..6 {
            assert!((folded[d] - cg[d]).abs() < 1e-8, "{folded:?} vs {cg:?}");
            assert!(
                (short[d] - short_cg[d]).abs() < 1e-8,
                "{short:?} vs {short_cg:?}"
            );
        }
        // Fold-in of a trained user's ratings is close to the trained vector
        // (the items moved once after the user's last solve).
        let trained = model.user_vector(1).unwrap();
        let gap: f64 = trained
            .iter()
            .zip(&folded)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(gap < 0.05, "fold-in {folded:?} vs trained {trained:?}");
    }
}
